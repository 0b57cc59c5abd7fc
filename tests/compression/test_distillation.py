import keras
import numpy as np
import pytest

from tests.helpers import to_numpy
from tfllm.compression import Distiller, quantize, truncated
from tfllm.compression.distillation import student_layers
from tfllm.models import BERT, GPT, BERTClassifier, BERTQuestionAnswerer, BERTTokenClassifier
from tfllm.training.losses import SparseCrossEntropy

SIZES = dict(vocabulary_size=64, num_layers=3, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=16)


def bert_inputs(batch=8, seq=8, seed=0, padded=0):
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, seq), "int32")
    mask[:, seq - padded :] = 0
    return {
        "token_ids": rng.integers(1, SIZES["vocabulary_size"], (batch, seq)).astype("int32") * mask,
        "segment_ids": np.zeros((batch, seq), "int32"),
        "padding_mask": mask,
    }


def classifier(num_classes=3, **overrides):
    return BERTClassifier(BERT(**{**SIZES, **overrides}), num_classes=num_classes, dropout=0.0)


def kl(teacher, student, temperature):
    """KL(softmax(t / T) || softmax(s / T)) over the last axis, in numpy."""

    def log_softmax(x):
        x = x / temperature
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    p = np.exp(log_softmax(teacher))
    return (p * (log_softmax(teacher) - log_softmax(student))).sum(-1)


def test_soft_target_loss_is_the_tempered_kl_times_t_squared():
    teacher, student = classifier(), classifier()
    distiller = Distiller(teacher, student, temperature=3.0)
    rng = np.random.default_rng(0)
    t, s = rng.normal(size=(5, 3)).astype("float32") * 4, rng.normal(size=(5, 3)).astype("float32")
    expected = kl(t, s, 3.0).mean() * 9
    np.testing.assert_allclose(to_numpy(distiller.soft_target_loss(t, s)), expected, rtol=1e-5)
    # Sample weights weigh the examples.
    weights = np.array([1, 0, 2, 0, 1], "float32")
    expected = (kl(t, s, 3.0) * weights).sum() / weights.sum() * 9
    np.testing.assert_allclose(to_numpy(distiller.soft_target_loss(t, s, weights)), expected, rtol=1e-5)
    # A student that predicts what the teacher does has nothing to learn.
    assert abs(float(to_numpy(distiller.soft_target_loss(t, t)))) < 1e-6


def test_soft_targets_of_token_outputs_skip_padding_and_masked_pieces():
    teacher = BERTTokenClassifier(BERT(**SIZES), num_classes=5)
    distiller = Distiller(teacher, BERTTokenClassifier(BERT(**SIZES), num_classes=5))
    rng = np.random.default_rng(1)
    t = rng.normal(size=(2, 6, 5)).astype("float32")
    s = rng.normal(size=(2, 6, 5)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], "int32")
    loss = to_numpy(distiller.soft_target_loss(t, s, padding_mask=mask))
    expected = (kl(t, s, 2.0) * mask).sum() / mask.sum() * 4
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    # Whatever the student says at a padded position changes nothing.
    s_changed = s.copy()
    s_changed[0, 4:] = 100.0
    np.testing.assert_allclose(to_numpy(distiller.soft_target_loss(t, s_changed, padding_mask=mask)), loss, rtol=1e-6)
    # Sample weights (a label on each word's first piece only) take the place of the padding mask.
    first_pieces = np.array([[1, 0, 1, 1, 0, 0], [1, 1, 0, 1, 0, 1]], "float32")
    expected = (kl(t, s, 2.0) * first_pieces).sum() / first_pieces.sum() * 4
    np.testing.assert_allclose(
        to_numpy(distiller.soft_target_loss(t, s, first_pieces, padding_mask=mask)), expected, rtol=1e-5
    )


def test_truncated_keeps_the_chosen_blocks_and_every_other_weight():
    teacher = classifier()
    x = bert_inputs()
    # All the blocks: the same model.
    np.testing.assert_allclose(to_numpy(truncated(teacher, [0, 1, 2])(x)), to_numpy(teacher(x)), atol=1e-5)
    student = truncated(teacher, [0, 2])
    assert type(student) is BERTClassifier and student.backbone.num_layers == 2 and student.num_classes == 3
    pairs = {"transformer_block_0": "transformer_block_0", "transformer_block_1": "transformer_block_2"}
    teacher_values = {weight.path: to_numpy(weight) for weight in teacher.weights}
    for weight in student.weights:
        block = weight.path.split("/")[0]
        source = weight.path.replace(block, pairs[block], 1) if block in pairs else weight.path
        np.testing.assert_array_equal(to_numpy(weight), teacher_values[source])
    # Evenly spaced blocks, first to last; one block is the last.
    assert student_layers(6, 2) == [0, 5] and student_layers(6, 3) == [0, 2, 5] and student_layers(6, 1) == [5]
    gpt = GPT(**SIZES)
    assert truncated(gpt, 1).num_layers == 1


@pytest.mark.parametrize("layers", [4, 0, [2, 1], [0, 0], [3], []])
def test_truncated_refuses_blocks_the_teacher_does_not_have(layers):
    with pytest.raises(ValueError, match="layers|blocks"):
        truncated(classifier(), layers)


def test_truncated_refuses_quantized_and_lora_teachers():
    quantized = quantize(classifier())
    with pytest.raises(ValueError, match="quantized"):
        truncated(quantized, 1)
    adapted = classifier()
    adapted.enable_lora(2)
    with pytest.raises(ValueError, match="LoRA"):
        truncated(adapted, 1)


def test_a_student_learns_the_teachers_predictions():
    keras.utils.set_random_seed(0)
    teacher = classifier()
    student = truncated(teacher, 1)
    for weight in student.weights:  # a student that knows nothing yet
        if weight.path.startswith("classifier_logits"):
            weight.assign(np.zeros(weight.shape, "float32"))
    x = bert_inputs(batch=64, seed=2)
    teacher_logits = to_numpy(teacher(x))
    y = teacher_logits.argmax(-1)
    # Labels that disagree with the teacher: with alpha 0 the student follows the teacher only.
    distiller = Distiller(teacher, student, temperature=2.0, alpha=0.0)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = kl(teacher_logits, to_numpy(student(x)), 2.0).mean()
    history = distiller.fit(x, (y + 1) % 3, epochs=30, batch_size=16, verbose=0)
    after = kl(teacher_logits, to_numpy(student(x)), 2.0).mean()
    assert after < before / 4
    assert "soft_loss" in history.history
    # The teacher did not move.
    np.testing.assert_array_equal(to_numpy(teacher(x)), teacher_logits)


def test_question_answerer_and_gpt_students_fit():
    x = bert_inputs(batch=4, padded=2)
    teacher = BERTQuestionAnswerer(BERT(**SIZES))
    distiller = Distiller(teacher, truncated(teacher, 1))
    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    distiller.compile(optimizer="adam", loss={"start_logits": sparse, "end_logits": sparse})
    y = {"start_logits": np.array([1, 2, 0, 3]), "end_logits": np.array([2, 3, 0, 5])}
    loss = distiller.fit(x, y, epochs=1, verbose=0).history["loss"][0]
    assert np.isfinite(loss)

    gpt = GPT(**SIZES)
    ids = np.random.default_rng(0).integers(0, 64, (4, 9)).astype("int32")
    gpt_x = {"token_ids": ids[:, :-1], "padding_mask": np.ones((4, 8), "int32")}
    distiller = Distiller(gpt, GPT(**{**SIZES, "num_layers": 1}), temperature=1.0)
    distiller.compile(optimizer="adam", loss=SparseCrossEntropy())
    assert np.isfinite(distiller.fit(gpt_x, ids[:, 1:], epochs=1, verbose=0).history["loss"][0])


def test_teacher_and_student_must_agree():
    with pytest.raises(ValueError, match="different vocabularies"):
        Distiller(classifier(), classifier(vocabulary_size=80))
    with pytest.raises(ValueError, match="outputs differ in size"):
        Distiller(classifier(), classifier(num_classes=2))
    with pytest.raises(ValueError, match="take different inputs"):
        Distiller(GPT(**SIZES), classifier())
    with pytest.raises(ValueError, match="temperature"):
        Distiller(classifier(), classifier(), temperature=0)
    with pytest.raises(ValueError, match="alpha"):
        Distiller(classifier(), classifier(), alpha=1.5)


def block_outputs(model, x):
    """Each block's output, from a model that returns them (the backbone's own graph)."""
    backbone = model.backbone
    probe = keras.Model(backbone.inputs, [block.output for block in backbone.transformer_blocks])
    return [to_numpy(output) for output in probe(x)]


def test_hidden_state_loss_is_the_masked_mean_squared_distance_of_matched_blocks():
    teacher = classifier()
    student = truncated(teacher, 2)
    distiller = Distiller(teacher, student, hidden_weight=1.0)
    assert distiller.hidden_layers == [0, 2]  # the blocks `truncated` kept
    x = bert_inputs(batch=4, padded=3)
    t, s = block_outputs(teacher, x), block_outputs(student, x)
    # The student's first block is the teacher's first: same output, nothing to learn there.
    np.testing.assert_allclose(s[0], t[0], atol=1e-5)
    mask = x["padding_mask"].astype("float32")
    expected = np.mean([((si - t[j]) ** 2).mean(-1).__mul__(mask).sum() / mask.sum() for si, j in zip(s, [0, 2])])
    got = distiller.hidden_state_loss([t[0], t[2]], s, x["padding_mask"])
    np.testing.assert_allclose(to_numpy(got), expected, rtol=1e-5)


def test_hidden_state_matching_pulls_the_students_blocks_to_the_teachers():
    keras.utils.set_random_seed(0)
    teacher = classifier()
    student = classifier(num_layers=2)  # a new student: its blocks know nothing of the teacher's
    x = bert_inputs(batch=32, seed=3)
    y = to_numpy(teacher(x)).argmax(-1)
    distiller = Distiller(teacher, student, alpha=0.5, hidden_weight=5.0, hidden_layers=[1, 2])
    distiller.compile(optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    t = block_outputs(teacher, x)

    def distance():
        return float(np.mean([((s - t[j]) ** 2).mean() for s, j in zip(block_outputs(student, x), [1, 2])]))

    before = distance()
    history = distiller.fit(x, y, epochs=20, batch_size=16, verbose=0).history
    assert distance() < before / 2
    assert history["hidden_loss"][-1] < history["hidden_loss"][0]
    np.testing.assert_array_equal(block_outputs(teacher, x)[2], t[2])  # the teacher did not move


def test_hidden_state_matching_needs_blocks_of_one_width_and_a_block_per_student_block():
    with pytest.raises(ValueError, match="blocks must have one width"):
        Distiller(classifier(), classifier(num_layers=1, hidden_dim=8), hidden_weight=1.0)
    with pytest.raises(ValueError, match="one teacher block for each of the student's 2 blocks"):
        Distiller(classifier(), classifier(num_layers=2), hidden_weight=1.0, hidden_layers=[1])
    with pytest.raises(ValueError, match="block indices"):
        Distiller(classifier(), classifier(num_layers=2), hidden_weight=1.0, hidden_layers=[2, 1])
    with pytest.raises(ValueError, match="hidden_weight"):
        Distiller(classifier(), classifier(), hidden_weight=-1.0)
    # Without hidden-state matching widths may differ.
    assert Distiller(classifier(), classifier(num_layers=1, hidden_dim=8)).hidden_layers is None
