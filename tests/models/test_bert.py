import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.helpers import to_numpy
from tfllm.models import BERT, PRESETS, BERTClassifier

CONFIG = PRESETS["bert-test"]


def bert_inputs(batch=2, seq=10, seed=0):
    rng = np.random.default_rng(seed)
    segment_ids = np.zeros((batch, seq), "int32")
    segment_ids[:, seq // 2 :] = 1
    return {
        "token_ids": rng.integers(0, CONFIG["vocabulary_size"], size=(batch, seq)).astype("int32"),
        "segment_ids": segment_ids,
        "padding_mask": np.ones((batch, seq), "int32"),
    }


def test_contract_inputs_and_outputs():
    model = BERT("bert-test")
    assert set(model.input) == {"token_ids", "segment_ids", "padding_mask"}
    outputs = model(bert_inputs())
    assert set(outputs) == {"sequence_output", "pooled_output"}
    assert tuple(outputs["sequence_output"].shape) == (2, 10, CONFIG["hidden_dim"])
    assert tuple(outputs["pooled_output"].shape) == (2, CONFIG["hidden_dim"])
    pooled = to_numpy(outputs["pooled_output"])
    assert np.all(np.abs(pooled) <= 1.0)  # tanh pooler


def test_pooler_reads_the_cls_output_of_the_last_block():
    # The pooled output comes from a [CLS]-only call of the last block (`output_length=1`):
    # it must be the pooler applied to the sequence output's first position.
    model = BERT("bert-test")
    inputs = bert_inputs()
    inputs["padding_mask"][0, 7:] = 0
    outputs = model(inputs)
    expected = model.pooler_dense(outputs["sequence_output"][:, 0, :])
    np.testing.assert_allclose(to_numpy(outputs["pooled_output"]), to_numpy(expected), atol=1e-5)


def compiled_matmul_shapes(model, inputs):
    """The output shapes of the matmuls in `model`'s forward pass as XLA compiles it."""
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        def forward(features):
            return model(features)

        hlo = tf.function(forward, jit_compile=True).experimental_get_compiler_ir(inputs)(stage="optimized_hlo")
    elif backend == "jax":
        import jax

        def forward(trainable, non_trainable, features):
            return model.stateless_call(trainable, non_trainable, features)[0]

        variables = [[v.value for v in vs] for vs in (model.trainable_variables, model.non_trainable_variables)]
        hlo = jax.jit(forward).lower(*variables, inputs).compile().as_text()
    else:
        pytest.skip(f"no XLA for the {backend} backend")
    return [tuple(int(d) for d in dims.split(",")) for dims in re.findall(r"= f32\[([\d,]+)\]\S* dot\(", hlo)]


def test_classifier_computes_only_cls_in_the_last_block():
    # The classifier uses the pooled output only: once compiled, the last block's
    # feed-forward network runs at [CLS] alone, the other blocks' at every token.
    classifier = BERTClassifier(BERT("bert-test"), num_classes=2)
    batch, seq, wide = 2, 10, CONFIG["intermediate_dim"]
    shapes = compiled_matmul_shapes(classifier, bert_inputs(batch, seq))
    every_token = [s for s in shapes if s in ((batch * seq, wide), (batch, seq, wide))]
    cls_only = [s for s in shapes if s in ((batch, wide), (batch, 1, wide))]
    assert (len(every_token), len(cls_only)) == (CONFIG["num_layers"] - 1, 1), shapes


def test_padding_leaves_real_positions_unchanged():
    model = BERT("bert-test")
    inputs = bert_inputs(batch=1, seq=6)
    reference = model(inputs)
    padded = {
        "token_ids": np.pad(inputs["token_ids"], ((0, 0), (0, 4)), constant_values=3),
        "segment_ids": np.pad(inputs["segment_ids"], ((0, 0), (0, 4))),
        "padding_mask": np.pad(inputs["padding_mask"], ((0, 0), (0, 4))),
    }
    outputs = model(padded)
    np.testing.assert_allclose(
        to_numpy(outputs["sequence_output"])[:, :6], to_numpy(reference["sequence_output"]), atol=1e-5
    )
    np.testing.assert_allclose(to_numpy(outputs["pooled_output"]), to_numpy(reference["pooled_output"]), atol=1e-5)


def test_segments_change_outputs():
    model = BERT("bert-test")
    inputs = bert_inputs()
    flipped = dict(inputs, segment_ids=1 - inputs["segment_ids"])
    assert not np.allclose(to_numpy(model(inputs)["pooled_output"]), to_numpy(model(flipped)["pooled_output"]))


def test_mixed_bfloat16():
    model = BERT("bert-test", dtype="mixed_bfloat16")
    outputs = model(bert_inputs())
    assert keras.backend.standardize_dtype(outputs["sequence_output"].dtype) == "bfloat16"
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in model.weights)


def test_sequence_longer_than_max_raises():
    with pytest.raises(ValueError, match="sequence_length=64"):
        BERT("bert-test")(bert_inputs(seq=70))


def test_save_and_reload_with_only_import_tfllm(tmp_path):
    model = BERT("bert-test")
    inputs = bert_inputs()
    path = str(tmp_path / "bert.keras")
    model.save(path)
    np.savez(tmp_path / "inputs.npz", **inputs)
    np.save(tmp_path / "expected.npy", to_numpy(model(inputs)["pooled_output"]))
    script = f"""
import numpy as np, keras, tfllm
model = keras.saving.load_model({path!r})
inputs = dict(np.load({str(tmp_path / 'inputs.npz')!r}))
pooled = keras.ops.convert_to_numpy(model(inputs)["pooled_output"])
np.testing.assert_allclose(pooled, np.load({str(tmp_path / 'expected.npy')!r}), atol=1e-6)
print("identical")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "identical" in result.stdout


def test_fine_tunes_with_jit_compile():
    backbone = BERT("bert-test")
    inputs = {name: keras.Input((None,), dtype="int32", name=name) for name in backbone.input}
    pooled = backbone(inputs)["pooled_output"]
    classifier = keras.Model(inputs, keras.layers.Dense(2)(pooled))
    data = bert_inputs(batch=16, seq=8)
    labels = (data["token_ids"][:, 0] % 2).astype("int32")
    classifier.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    losses = classifier.fit(data, labels, batch_size=16, epochs=30, verbose=0).history["loss"]
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(preset="bert-huge"), "Unknown BERT preset"),
        (dict(preset="gpt2-small"), "another model"),
        (dict(preset="bert-test", num_heads=3), "num_heads=3, hidden_dim=32"),
        (dict(preset="bert-test", num_segments=0), "num_segments=0"),
        (dict(preset="bert-test", layer_norm_epsilon=-1.0), "layer_norm_epsilon"),
        (dict(preset="bert-test", max_sequence_length=2.5), "max_sequence_length=2.5"),
    ],
)
def test_bad_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BERT(**kwargs)


def test_config_is_kept_and_rebuilds_the_model():
    model = BERT.from_preset("bert-test", num_segments=3)
    assert isinstance(model, BERT)
    assert (model.num_layers, model.hidden_dim, model.num_segments) == (2, 32, 3)
    assert model.segment_embedding.input_dim == 3
    assert len(model.transformer_blocks) == 2 and not any(block.causal for block in model.transformer_blocks)
    rebuilt = BERT.from_config(model.get_config())
    assert type(rebuilt) is BERT and rebuilt.get_config() == model.get_config()


def test_task_models_wrap_the_backbone_and_reload(tmp_path):
    backbone = BERT("bert-test")
    classifier = BERTClassifier(backbone, num_classes=3, dropout=0.2)
    assert classifier.backbone is backbone and classifier.num_classes == 3 and classifier.dropout == 0.2
    inputs = bert_inputs()
    expected = to_numpy(classifier(inputs))
    path = str(tmp_path / "classifier.keras")
    classifier.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded) is BERTClassifier and type(reloaded.backbone) is BERT
    assert reloaded.get_config()["num_classes"] == 3
    np.testing.assert_allclose(to_numpy(reloaded(inputs)), expected, atol=1e-6)


def test_mean_pooling_averages_real_tokens_only_and_reloads(tmp_path):
    classifier = BERTClassifier(BERT("bert-test"), num_classes=3, pooling="mean")
    inputs = bert_inputs(batch=2, seq=6)
    inputs["padding_mask"][1, 4:] = 0
    hidden = to_numpy(classifier.backbone(inputs)["sequence_output"])
    mask = inputs["padding_mask"][..., None]
    mean = (hidden * mask).sum(axis=1) / mask.sum(axis=1)
    kernel, bias = (to_numpy(w) for w in classifier.output_dense.weights)
    np.testing.assert_allclose(to_numpy(classifier(inputs)), mean @ kernel + bias, atol=1e-5)

    path = str(tmp_path / "mean.keras")
    classifier.save(path)
    reloaded = keras.saving.load_model(path)
    assert reloaded.pooling == "mean"
    np.testing.assert_allclose(to_numpy(reloaded(inputs)), to_numpy(classifier(inputs)), atol=1e-6)
    with pytest.raises(ValueError, match="pooling"):
        BERTClassifier(BERT("bert-test"), num_classes=3, pooling="max")


def test_pretrainer_keeps_its_tie_through_save(tmp_path):
    from tfllm.models import BERTPretrainer

    pretrainer = BERTPretrainer(BERT("bert-test"))
    assert pretrainer.masked_lm_head.token_embedding is pretrainer.backbone.token_embedding
    inputs = dict(bert_inputs(), mask_positions=np.array([[1, 2], [3, 0]], "int32"))
    expected = to_numpy(pretrainer(inputs)["mlm"])
    path = str(tmp_path / "pretrainer.keras")
    pretrainer.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded) is BERTPretrainer
    assert reloaded.masked_lm_head.token_embedding is reloaded.backbone.token_embedding
    np.testing.assert_allclose(to_numpy(reloaded(inputs)["mlm"]), expected, atol=1e-6)
    # One token table: the head has only its transform and bias besides it.
    tables = [w for w in reloaded.weights if tuple(w.shape) == (CONFIG["vocabulary_size"], CONFIG["hidden_dim"])]
    assert len(tables) == 1


def test_task_models_need_a_bert_backbone():
    from tfllm.models import GPT, BERTPretrainer, BERTQuestionAnswerer, BERTTokenClassifier

    for task in (lambda b: BERTClassifier(b, 2), BERTPretrainer, lambda b: BERTTokenClassifier(b, 3), BERTQuestionAnswerer):
        with pytest.raises(ValueError, match="needs a `tfllm.models.BERT` backbone"):
            task(GPT("gpt-test"))


def test_token_and_span_heads_reload_and_mask_padding(tmp_path):
    from tfllm.models import BERTQuestionAnswerer, BERTTokenClassifier

    inputs = bert_inputs()
    inputs["padding_mask"][1, 7:] = 0
    tagger = BERTTokenClassifier(BERT("bert-test"), num_classes=5, dropout=0.2)
    reader = BERTQuestionAnswerer(BERT("bert-test"))
    assert tagger.num_classes == 5 and tagger.output_dense.units == 5 and reader.span_dense.units == 2
    logits = to_numpy(tagger(inputs))
    spans = {k: to_numpy(v) for k, v in reader(inputs).items()}
    assert logits.shape == (2, 10, 5) and logits.dtype == np.float32
    assert sorted(spans) == ["end_logits", "start_logits"] and spans["start_logits"].shape == (2, 10)
    assert (spans["start_logits"][1, 7:] < -1e8).all() and (spans["end_logits"][1, 7:] < -1e8).all()
    assert (np.abs(spans["start_logits"][0]) < 1e3).all()
    for model, expected in ((tagger, logits), (reader, spans["end_logits"])):
        path = str(tmp_path / f"{model.name}.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
        assert type(reloaded) is type(model) and type(reloaded.backbone) is BERT
        outputs = to_numpy(reloaded(inputs) if model is tagger else reloaded(inputs)["end_logits"])
        np.testing.assert_allclose(outputs, expected, atol=1e-5)


def test_token_classifier_learns_tags():
    from tfllm.models import BERTTokenClassifier

    # Tag each token by whether its id is even: a rule only a per-token head can learn.
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 60, size=(64, 8)).astype("int32")
    features = {"token_ids": ids, "segment_ids": 0 * ids, "padding_mask": np.ones_like(ids)}
    tagger = BERTTokenClassifier(BERT("bert-test"), num_classes=2, dropout=0.0)
    tagger.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    tagger.fit(features, ids % 2, batch_size=16, epochs=30, verbose=0)
    assert (to_numpy(tagger(features)).argmax(-1) == ids % 2).mean() > 0.95
