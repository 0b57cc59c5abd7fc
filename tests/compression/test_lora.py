import os

import keras
import numpy as np
import pytest

from tests.helpers import to_numpy
from tfllm.compression import load_lora, merge_lora, save_lora
from tfllm.layers.transformer_block import LORA_TARGETS
from tfllm.models import BERT, GPT, BERTClassifier

SIZES = dict(vocabulary_size=64, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=16)


def classifier(**overrides):
    return BERTClassifier(BERT(**{**SIZES, **overrides}), num_classes=3)


def bert_inputs(batch=4, seq=8, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "token_ids": rng.integers(1, SIZES["vocabulary_size"], (batch, seq)).astype("int32"),
        "segment_ids": np.zeros((batch, seq), "int32"),
        "padding_mask": np.ones((batch, seq), "int32"),
    }


def perturb_adapters(model, seed=0):
    """Nonzero B matrices: a fresh adapter adds nothing, so nothing could be told apart."""
    rng = np.random.default_rng(seed)
    backbone = getattr(model, "backbone", model)
    for block in backbone.transformer_blocks:
        for _, b in block._lora.values():
            b.assign(rng.normal(0, 0.2, b.shape).astype("float32"))


def values(model):
    return {weight.path: to_numpy(weight).copy() for weight in model.weights}


def test_fresh_adapters_change_nothing_and_only_adapters_and_head_train():
    model = classifier()
    inputs = bert_inputs()
    before = to_numpy(model(inputs))
    model.enable_lora(4, targets=("query", "value"))
    np.testing.assert_array_equal(to_numpy(model(inputs)), before)
    trainable = sorted(weight.path for weight in model.trainable_weights)
    adapters = [f"transformer_block_{i}/lora_{t}_{m}" for i in range(2) for t in ("query", "value") for m in "ab"]
    assert trainable == sorted(adapters + ["classifier_logits/bias", "classifier_logits/kernel"])
    assert model.backbone.lora == {"rank": 4, "alpha": 4.0, "targets": ["query", "value"]}


def test_training_moves_the_adapters_and_head_only():
    model = classifier()
    model.enable_lora(2)
    start = values(model)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(bert_inputs(batch=8), np.arange(8) % 3, epochs=2, batch_size=4, verbose=0)
    end = values(model)
    changed = {path for path in start if not np.array_equal(start[path], end[path])}
    trainable = {weight.path for weight in model.trainable_weights}
    assert changed and changed <= trainable
    assert any("lora_query_b" in path for path in changed) and "classifier_logits/kernel" in changed


@pytest.mark.parametrize("target, third", [("query", 0), ("key", 1), ("value", 2)])
def test_query_key_and_value_adapt_their_own_third_of_the_fused_kernel(target, third):
    model = classifier()
    kernel = to_numpy(model.backbone.transformer_blocks[0].qkv_dense.kernel).copy()
    model.enable_lora(2, targets=[target])
    perturb_adapters(model)
    merged = to_numpy(merge_lora(model).backbone.transformer_blocks[0].qkv_dense.kernel)
    hidden = SIZES["hidden_dim"]
    for part in range(3):
        columns = slice(part * hidden, (part + 1) * hidden)
        same = np.allclose(merged[:, columns], kernel[:, columns])
        assert same == (part != third), (target, part)


@pytest.mark.parametrize("targets", [("query", "value"), LORA_TARGETS])
def test_merged_classifier_computes_what_the_adapted_one_does(targets):
    model = classifier()
    model.enable_lora(4, alpha=8, targets=targets)
    perturb_adapters(model)
    inputs = bert_inputs()
    merged = merge_lora(model)
    assert type(merged) is BERTClassifier and merged.backbone.lora is None
    assert not any("lora" in weight.path for weight in merged.weights)
    assert merged.count_params() == classifier().count_params()
    np.testing.assert_allclose(to_numpy(merged(inputs)), to_numpy(model(inputs)), atol=1e-5)
    assert model.backbone.lora is not None  # the adapted model is left as it was


def test_merged_gpt_computes_what_the_adapted_one_does():
    model = GPT(**SIZES)
    model.enable_lora(2, targets=("query", "key", "value", "feedforward_intermediate"))
    perturb_adapters(model)
    token_ids = np.random.default_rng(0).integers(0, 64, (2, 8)).astype("int32")
    inputs = {"token_ids": token_ids, "padding_mask": np.ones_like(token_ids)}
    merged = merge_lora(model)
    np.testing.assert_allclose(to_numpy(merged(inputs)), to_numpy(model(inputs)), atol=1e-5)


def test_cached_decoding_uses_the_adapters():
    model = GPT(**SIZES)
    model.enable_lora(2, targets=("key", "value"))
    perturb_adapters(model)
    block = model.transformer_blocks[0]
    x = keras.random.normal((1, 5, SIZES["hidden_dim"]), seed=1)
    full = to_numpy(block(x))
    output, cache = block(x[:, :4], cache=block.empty_cache(1, 8), cache_index=0)
    last, _ = block(x[:, 4:], cache=cache, cache_index=4)
    np.testing.assert_allclose(to_numpy(last)[:, 0], full[:, 4], atol=1e-5)


def test_keras_file_keeps_the_adapters_and_the_freezing(tmp_path):
    model = classifier()
    model.enable_lora(4, targets=("value", "attention_output"))
    perturb_adapters(model)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    inputs = bert_inputs()
    np.testing.assert_allclose(to_numpy(loaded(inputs)), to_numpy(model(inputs)), atol=1e-6)
    assert loaded.backbone.lora == model.backbone.lora
    assert sorted(w.path for w in loaded.trainable_weights) == sorted(w.path for w in model.trainable_weights)


def test_adapter_file_round_trips_into_a_model_without_lora(tmp_path):
    model = classifier()
    model.enable_lora(4)
    perturb_adapters(model)
    path = save_lora(model, str(tmp_path / "adapters.safetensors"))
    assert os.path.getsize(path) < 10_000

    other = classifier()
    base = {weight.path: weight for weight in model.weights}
    for weight in other.weights:
        if weight.path in base:
            weight.assign(base[weight.path])
    assert other.backbone.lora is None
    load_lora(other, path)
    assert other.backbone.lora == model.backbone.lora
    inputs = bert_inputs()
    np.testing.assert_allclose(to_numpy(other(inputs)), to_numpy(model(inputs)), atol=1e-6)


def test_adapter_file_of_another_shape_is_refused_and_the_model_untouched(tmp_path):
    model = classifier()
    model.enable_lora(4)
    path = save_lora(model, str(tmp_path / "adapters.safetensors"))
    wider = classifier(hidden_dim=32)
    before = values(wider)
    with pytest.raises(ValueError, match="does not fit this BERTClassifier: other shapes"):
        load_lora(wider, path)
    assert wider.backbone.lora is None and len(wider.weights) == len(before)

    ranked = classifier()
    ranked.enable_lora(8)
    with pytest.raises(ValueError, match="holds LoRA .* the model has LoRA"):
        load_lora(ranked, path)


def test_files_that_are_not_adapter_files(tmp_path):
    from safetensors.numpy import save_file

    with pytest.raises(FileNotFoundError, match="No LoRA file"):
        load_lora(classifier(), str(tmp_path / "missing.safetensors"))
    plain = str(tmp_path / "plain.safetensors")
    save_file({"x": np.zeros(2, "float32")}, plain)
    with pytest.raises(ValueError, match="not a tfllm LoRA file"):
        load_lora(classifier(), plain)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_lora(classifier(), str(broken))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rank=0), "rank"),
        (dict(rank=2, alpha=-1.0), "alpha"),
        (dict(rank=2, targets=("query", "gate")), "LoRA targets must be distinct names"),
        (dict(rank=2, targets=()), "LoRA targets must be distinct names"),
        (dict(rank=2, targets=("value", "value")), "LoRA targets must be distinct names"),
    ],
)
def test_bad_lora_settings_leave_the_model_untouched(kwargs, message):
    model = classifier()
    trainable = len(model.trainable_weights)
    with pytest.raises(ValueError, match=message):
        model.enable_lora(**kwargs)
    assert model.backbone.lora is None and len(model.trainable_weights) == trainable


def test_lora_twice_merge_without_lora_and_lora_on_a_quantized_model():
    model = classifier()
    with pytest.raises(ValueError, match="no LoRA adapters to merge"):
        merge_lora(model)
    with pytest.raises(ValueError, match="no LoRA adapters"):
        save_lora(model, "unused.safetensors")
    model.enable_lora(2)
    with pytest.raises(ValueError, match="already enabled"):
        model.enable_lora(2)

    quantized = BERT(**SIZES)
    quantized.quantize("int8")
    with pytest.raises(ValueError, match="LoRA cannot go on the quantized"):
        quantized.enable_lora(2)
    with pytest.raises(ValueError, match="tfllm models"):
        merge_lora(keras.Sequential([keras.layers.Dense(2)]))
