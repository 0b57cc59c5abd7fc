import keras
import numpy as np
import pytest

from tests.helpers import to_numpy
from tfllm.compression import feedforward_importance, head_importance, prune, prune_by_importance
from tfllm.generation import generate
from tfllm.models import BERT, GPT, BERTClassifier, BERTPretrainer, BERTQuestionAnswerer, BERTTokenClassifier

SIZES = dict(vocabulary_size=64, num_layers=2, num_heads=4, hidden_dim=16, intermediate_dim=32, max_sequence_length=16)
HEAD_DIM = SIZES["hidden_dim"] // SIZES["num_heads"]


def bert_inputs(batch=4, seq=8, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "token_ids": rng.integers(1, SIZES["vocabulary_size"], (batch, seq)).astype("int32"),
        "segment_ids": np.zeros((batch, seq), "int32"),
        "padding_mask": np.ones((batch, seq), "int32"),
    }


def gpt_inputs(batch=2, seq=8):
    token_ids = np.random.default_rng(0).integers(0, SIZES["vocabulary_size"], (batch, seq)).astype("int32")
    return {"token_ids": token_ids, "padding_mask": np.ones_like(token_ids)}


def classifier():
    model = BERTClassifier(BERT(**SIZES, dropout=0.0), num_classes=3, dropout=0.0)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def zero_rows(model, heads, units):
    """`model` with the output rows of `heads` and `units` ({layer: [indices]}) set to zero in place:
    what the gates at zero compute."""
    blocks = getattr(model, "backbone", model).transformer_blocks
    for layer, removed in heads.items():
        kernel = to_numpy(blocks[layer].attention_output_dense.kernel).copy()
        for head in removed:
            kernel[head * HEAD_DIM:(head + 1) * HEAD_DIM] = 0
        blocks[layer].attention_output_dense.kernel.assign(kernel)
    for layer, removed in units.items():
        kernel = to_numpy(blocks[layer].feedforward_output_dense.kernel).copy()
        kernel[removed] = 0
        blocks[layer].feedforward_output_dense.kernel.assign(kernel)


HEADS = {0: [1, 3], 1: [0]}
UNITS = {0: [0, 5, 31], 1: [7]}


@pytest.mark.parametrize(
    "build, inputs",
    [
        (lambda: BERTClassifier(BERT(**SIZES), num_classes=3), bert_inputs),
        (lambda: BERTTokenClassifier(BERT(**SIZES), num_classes=5), bert_inputs),
        (lambda: BERTQuestionAnswerer(BERT(**SIZES)), bert_inputs),
        (lambda: BERT(**SIZES), bert_inputs),
        (lambda: GPT(**SIZES), gpt_inputs),
    ],
)
def test_pruned_model_computes_what_the_original_does_with_the_pruned_rows_zeroed(build, inputs):
    model = build()
    original = {weight.path: to_numpy(weight).copy() for weight in model.weights}
    pruned = prune(model, heads=HEADS, feedforward_units=UNITS)
    assert type(pruned) is type(model)
    backbone = getattr(pruned, "backbone", pruned)
    assert backbone.num_heads == [2, 3] and backbone.head_dim == HEAD_DIM
    assert backbone.intermediate_dim == [29, 31]
    assert [block.qkv_dense.kernel.shape for block in backbone.transformer_blocks] == [(16, 24), (16, 36)]
    assert pruned.count_params() < model.count_params()
    # The original is untouched.
    assert all(np.array_equal(to_numpy(weight), original[weight.path]) for weight in model.weights)

    zero_rows(model, HEADS, UNITS)
    expected, actual = model(inputs(), training=False), pruned(inputs(), training=False)
    keras.tree.map_structure(lambda a, b: np.testing.assert_allclose(to_numpy(a), to_numpy(b), atol=1e-5), expected, actual)


def test_pretrainer_prunes_and_keeps_its_tied_head():
    model = BERTPretrainer(BERT(**SIZES))
    pruned = prune(model, heads={1: [2]})
    inputs = {**bert_inputs(), "mask_positions": np.array([[1, 2]] * 4, "int32")}
    assert pruned.masked_lm_head.token_embedding is pruned.backbone.token_embedding
    zero_rows(model, {1: [2]}, {})
    np.testing.assert_allclose(to_numpy(pruned(inputs)["mlm"]), to_numpy(model(inputs)["mlm"]), atol=1e-5)


def test_a_useless_head_and_unit_score_zero_and_the_scores_are_normalised():
    model = classifier()
    zero_rows(model, {0: [2]}, {1: [4]})
    labels = np.arange(8) % 3
    dataset = [(bert_inputs(seed=seed), labels[:4]) for seed in range(3)]
    heads = head_importance(model, dataset)
    units = feedforward_importance(model, dataset, steps=2)
    assert [scores.shape for scores in heads] == [(4,), (4,)]
    assert [scores.shape for scores in units] == [(32,), (32,)]
    assert heads[0][2] == 0 and units[1][4] == 0
    assert all(np.all(scores[np.arange(4) != 2] > 0) for scores in heads[:1])
    np.testing.assert_allclose([np.linalg.norm(scores) for scores in heads + units], 1.0, rtol=1e-5)


def test_head_importance_is_the_gradient_of_a_gate_on_each_head():
    """Against central differences of a loss in a gate scaling each head's output rows. The loss
    is linear in the logits, with no constant part for float32 rounding to swamp the differences."""
    model = classifier()
    inputs = bert_inputs()
    direction = np.random.default_rng(1).normal(size=(4, 3)).astype("float32")

    def loss(y_true, y_pred, sample_weight=None):
        return keras.ops.sum(y_pred * direction)

    kernel = model.backbone.transformer_blocks[1].attention_output_dense.kernel
    weights = to_numpy(kernel).copy()

    def loss_with_gate(head, gate):
        scaled = weights.copy()
        scaled[head * HEAD_DIM:(head + 1) * HEAD_DIM] *= gate
        kernel.assign(scaled)
        return float(to_numpy(loss(None, model(inputs, training=False))))

    eps = 0.1
    gradients = np.array([(loss_with_gate(h, 1 + eps) - loss_with_gate(h, 1 - eps)) / (2 * eps) for h in range(4)])
    kernel.assign(weights)
    expected = np.abs(gradients) / np.linalg.norm(gradients)
    np.testing.assert_allclose(head_importance(model, [(inputs, None)], loss=loss)[1], expected, atol=2e-3)


def test_importance_with_a_given_loss_equals_the_compiled_one():
    model = classifier()
    dataset = [(bert_inputs(), np.array([0, 1, 2, 0]))]
    given = head_importance(model, dataset, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    np.testing.assert_allclose(np.stack(given), np.stack(head_importance(model, dataset)), rtol=1e-5)


def test_prune_by_importance_removes_the_least_important_keeping_one_head_per_layer():
    model = classifier()
    zero_rows(model, {0: [0, 1, 2, 3]}, {})  # layer 0's heads all score lowest: one of them stays
    dataset = [(bert_inputs(seed=seed), np.array([0, 1, 2, 0])) for seed in range(2)]
    pruned, report = prune_by_importance(model, dataset, head_fraction=0.5, feedforward_fraction=0.25)
    assert report["heads_before"] == [4, 4] and report["heads_after"] == [1, 3]
    assert report["heads_removed"][0] == [0, 1, 2] and len(report["heads_removed"][1]) == 1
    assert report["intermediate_before"] == [32, 32] and report["intermediate_after"] == [24, 24]
    assert report["parameters_after"] == pruned.count_params() < report["parameters_before"]
    assert pruned.backbone.num_heads == [1, 3]


def test_pruned_model_round_trips_through_a_keras_file(tmp_path):
    pruned = prune(classifier(), heads=HEADS, feedforward_units=UNITS)
    path = str(tmp_path / "pruned.keras")
    pruned.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.backbone.num_heads == [2, 3] and loaded.backbone.intermediate_dim == [29, 31]
    np.testing.assert_allclose(to_numpy(loaded(bert_inputs())), to_numpy(pruned(bert_inputs())), atol=1e-6)


def test_pruned_gpt_generates_what_its_full_pass_predicts():
    pruned = prune(GPT(**SIZES, dropout=0.0), heads={0: [0, 1, 2], 1: [3]}, feedforward_units={1: [1, 2]})
    prompt = gpt_inputs()["token_ids"][:, :4]
    ids = keras.ops.convert_to_numpy(generate(pruned, prompt, max_new_tokens=4))
    logits = to_numpy(pruned({"token_ids": ids[:, :-1], "padding_mask": np.ones_like(ids[:, :-1])}))
    np.testing.assert_array_equal(logits[:, 3:].argmax(-1), ids[:, 4:])


@pytest.mark.parametrize(
    "heads, units, message",
    [
        ({2: [0]}, None, "layer index"),
        ({0: [4]}, None, r"heads\[0\] head index"),
        ({0: [1, 1]}, None, "more than once"),
        ({1: [0, 1, 2, 3]}, None, "every head of layer 1"),
        (None, {0: list(range(32))}, "every unit of layer 0"),
        (None, {0: [-1]}, "unit index"),
        ([0, 1], None, "must be a dict"),
    ],
)
def test_bad_pruning_is_refused_and_the_model_untouched(heads, units, message):
    model = classifier()
    before = model.get_config()
    with pytest.raises(ValueError, match=message):
        prune(model, heads=heads, feedforward_units=units)
    assert model.get_config() == before


def test_lora_and_quantized_models_are_refused():
    model = classifier()
    model.enable_lora(2)
    with pytest.raises(ValueError, match="LoRA adapters: merge them first"):
        prune(model, heads={0: [0]})
    model = classifier()
    model.quantize("int8")
    with pytest.raises(ValueError, match="quantized: prune the float model"):
        prune(model, heads={0: [0]})


def test_importance_needs_a_loss():
    with pytest.raises(ValueError, match="no compiled loss"):
        head_importance(BERTClassifier(BERT(**SIZES), num_classes=2), [(bert_inputs(), np.zeros(4))])
