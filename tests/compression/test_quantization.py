import os

import keras
import numpy as np
import pytest

from tests.helpers import to_numpy
from tfllm.compression import cast, merge_lora, quantize
from tfllm.models import BERT, GPT, BERTClassifier

SIZES = dict(vocabulary_size=64, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=16)


def bert_inputs(batch=4, seq=8, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "token_ids": rng.integers(1, SIZES["vocabulary_size"], (batch, seq)).astype("int32"),
        "segment_ids": np.zeros((batch, seq), "int32"),
        "padding_mask": np.ones((batch, seq), "int32"),
    }


def quantized_layers(model):
    return sorted({layer.name for layer in model._flatten_layers() if getattr(layer, "quantization_mode", None)})


@pytest.mark.parametrize("activations", [False, True])
def test_int8_classifier_is_close_and_every_kernel_is_int8(activations):
    model = BERTClassifier(BERT(**SIZES), num_classes=3)
    inputs = bert_inputs()
    before = to_numpy(model(inputs))
    quantize(model, activations=activations)
    assert model.quantization == {"mode": "int8", "activations": activations}
    assert quantized_layers(model) == [
        "attention_output_dense", "classifier_logits", "feedforward_intermediate_dense", "feedforward_output_dense",
        "pooler_dense", "qkv_dense", "segment_embedding", "token_embedding",
    ]
    kernels = [weight for weight in model.weights if weight.path.endswith(("/kernel", "/embeddings"))]
    assert {str(weight.dtype) for weight in kernels if "position_embedding" not in weight.path} == {"int8"}
    np.testing.assert_allclose(to_numpy(model(inputs)), before, atol=0.05 if activations else 0.01)


def test_int8_model_round_trips_through_a_keras_file(tmp_path):
    model = BERTClassifier(BERT(**SIZES), num_classes=3)
    quantize(model)
    path = str(tmp_path / "int8.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.quantization == loaded.backbone.quantization == {"mode": "int8", "activations": False}
    assert quantized_layers(loaded) == quantized_layers(model)
    np.testing.assert_array_equal(to_numpy(loaded(bert_inputs())), to_numpy(model(bert_inputs())))
    # int8 weights take a quarter of the bytes of float32 ones, plus a float scale a channel.
    wider = {**SIZES, "vocabulary_size": 4096, "hidden_dim": 64, "intermediate_dim": 256}
    float_path = str(tmp_path / "float.keras")
    BERTClassifier(BERT(**wider), num_classes=3).save(float_path)
    quantize(BERTClassifier(BERT(**wider), num_classes=3)).save(path)
    assert os.path.getsize(path) < 0.35 * os.path.getsize(float_path)


def test_int8_gpt_generates_and_round_trips(tmp_path):
    from tfllm.generation import generate

    model = GPT(**{**SIZES, "max_sequence_length": 32})
    quantize(model)
    prompt = np.array([[5, 6, 7]], "int32")
    output = to_numpy(generate(model, prompt, 6, jit_compile=False))
    # Greedy: each new token is the argmax of the quantized model's own logits.
    logits = to_numpy(model({"token_ids": output[:, :-1], "padding_mask": np.ones_like(output[:, :-1])}))
    np.testing.assert_array_equal(output[0, 3:], logits[0, 2:].argmax(-1))
    model.save(str(tmp_path / "gpt.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "gpt.keras"))
    np.testing.assert_array_equal(to_numpy(generate(loaded, prompt, 6, jit_compile=False)), output)


def test_quantizing_twice_an_unknown_mode_and_lora_are_refused():
    model = BERTClassifier(BERT(**SIZES), num_classes=3)
    with pytest.raises(ValueError, match="tfllm models quantize to 'int8'"):
        quantize(model, "int4")
    assert model.quantization is None and quantized_layers(model) == []
    model.enable_lora(2)
    with pytest.raises(ValueError, match="has LoRA adapters: merge them first"):
        quantize(model)
    merged = quantize(merge_lora(model))
    with pytest.raises(ValueError, match="already quantized"):
        quantize(merged)
    with pytest.raises(ValueError, match="already quantized"):
        merged.quantize("int8")


def test_a_bfloat16_cast_keeps_the_predictions_round_trips_and_quantizes(tmp_path):
    model = BERTClassifier(BERT(**SIZES), num_classes=3)
    inputs = bert_inputs()
    half = cast(model, "bfloat16")
    assert type(half) is BERTClassifier and half.backbone.dtype_policy.name == "bfloat16"
    assert {weight.dtype for weight in half.backbone.weights} == {"bfloat16"}
    assert {weight.dtype for weight in model.weights} == {"float32"}  # the original is untouched
    logits = to_numpy(half(inputs))
    assert logits.dtype == np.float32
    np.testing.assert_allclose(logits, to_numpy(model(inputs)), atol=0.05)
    path = str(tmp_path / "bf16.keras")
    half.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.backbone.dtype_policy.name == "bfloat16"
    np.testing.assert_array_equal(to_numpy(loaded(inputs)), logits)
    # int8 weights with bfloat16 products.
    both = quantize(cast(model, "bfloat16"))
    dense = [layer for layer in both.backbone._flatten_layers() if isinstance(layer, keras.layers.Dense)]
    assert dense and {(layer.quantization_mode, layer.compute_dtype) for layer in dense} == {("int8", "bfloat16")}
    np.testing.assert_allclose(to_numpy(both(inputs)), logits, atol=0.05)


def test_a_bfloat16_gpt_generates_its_own_greedy_tokens():
    from tfllm.generation import generate

    model = cast(GPT(**{**SIZES, "max_sequence_length": 32}), "bfloat16")
    prompt = np.array([[5, 6, 7]], "int32")
    output = to_numpy(generate(model, prompt, 6, jit_compile=False))
    logits = to_numpy(model({"token_ids": output[:, :-1], "padding_mask": np.ones_like(output[:, :-1])}))
    np.testing.assert_array_equal(output[0, 3:], logits[0, 2:].argmax(-1))


def test_cast_refuses_an_unknown_dtype_a_quantized_model_and_lora():
    model = BERTClassifier(BERT(**SIZES), num_classes=3)
    with pytest.raises(ValueError, match="`dtype` must be one of"):
        cast(model, "int8")
    with pytest.raises(ValueError, match="takes a tfllm model"):
        cast(keras.Sequential([keras.layers.Dense(2)]))
    with pytest.raises(ValueError, match="cast the float model, then quantize"):
        cast(quantize(BERTClassifier(BERT(**SIZES), num_classes=3)))
    model.enable_lora(2)
    with pytest.raises(ValueError, match="has LoRA adapters: merge them first"):
        cast(model)


def test_the_quantize_bfloat16_flag_gives_a_compiled_bfloat16_copy(tmp_path):
    from argparse import Namespace

    from tfllm.training import harness

    model = BERTClassifier(BERT(**SIZES), num_classes=3)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    half, metrics = harness.compress(model, Namespace(quantize="bfloat16", output_dir=str(tmp_path)))
    assert metrics["dtype"] == "bfloat16" and half.backbone.dtype_policy.name == "bfloat16"
    loss, accuracy = half.evaluate(bert_inputs(), np.array([0, 1, 2, 0]), verbose=0)
    assert np.isfinite(loss) and 0 <= accuracy <= 1
