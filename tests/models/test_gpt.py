import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.helpers import to_numpy
from tfllm.models import GPT, PRESETS

CONFIG = PRESETS["gpt-test"]


def gpt_inputs(batch=2, seq=10, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "token_ids": rng.integers(0, CONFIG["vocabulary_size"], size=(batch, seq)).astype("int32"),
        "padding_mask": np.ones((batch, seq), "int32"),
    }


def test_contract_inputs_and_outputs():
    model = GPT("gpt-test")
    assert set(model.input) == {"token_ids", "padding_mask"}
    logits = model(gpt_inputs())
    assert tuple(logits.shape) == (2, 10, CONFIG["vocabulary_size"])
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert isinstance(model, GPT) and isinstance(model, keras.Model)
    assert len(model.transformer_blocks) == model.num_layers == CONFIG["num_layers"]
    assert all(block.causal and block.normalize_first for block in model.transformer_blocks)
    assert model.position_embedding.sequence_length == model.max_sequence_length == CONFIG["max_sequence_length"]


def test_logits_float32_under_mixed_bfloat16():
    model = GPT("gpt-test", dtype="mixed_bfloat16")
    logits = model(gpt_inputs())
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in model.weights)
    assert model.transformer_blocks[0].compute_dtype == "bfloat16"
    assert model.get_config()["dtype"]["config"]["name"] == "mixed_bfloat16"


def test_output_projection_is_tied_to_token_embedding():
    model = GPT("gpt-test")
    embeddings = [w for w in model.weights if "embeddings" in w.path]
    # One token table and one position table; no separate output kernel.
    assert len(embeddings) == 2
    assert model.count_params() == _gpt_parameter_count(**CONFIG)


def test_causal_logits_ignore_later_tokens():
    model = GPT("gpt-test")
    inputs = gpt_inputs()
    changed = {k: v.copy() for k, v in inputs.items()}
    changed["token_ids"][:, 6:] = (changed["token_ids"][:, 6:] + 1) % CONFIG["vocabulary_size"]
    a, b = to_numpy(model(inputs)), to_numpy(model(changed))
    np.testing.assert_allclose(a[:, :6], b[:, :6], atol=1e-5)
    assert not np.allclose(a[:, 6:], b[:, 6:], atol=1e-4)


def test_right_padding_leaves_real_positions_unchanged():
    model = GPT("gpt-test")
    inputs = gpt_inputs(batch=1, seq=6)
    reference = to_numpy(model(inputs))
    padded = {
        "token_ids": np.concatenate([inputs["token_ids"], [[7, 8, 9]]], axis=1).astype("int32"),
        "padding_mask": np.array([[1] * 6 + [0] * 3], "int32"),
    }
    np.testing.assert_allclose(to_numpy(model(padded))[:, :6], reference, atol=1e-5)


def test_sequence_longer_than_max_raises():
    model = GPT("gpt-test")
    with pytest.raises(ValueError, match="sequence_length=64"):
        model(gpt_inputs(seq=65))


def test_save_and_reload_with_only_import_tfllm(tmp_path):
    model = GPT("gpt-test")
    inputs = gpt_inputs()
    path = str(tmp_path / "gpt.keras")
    model.save(path)
    np.save(tmp_path / "token_ids.npy", inputs["token_ids"])
    np.save(tmp_path / "expected.npy", to_numpy(model(inputs)))
    script = f"""
import numpy as np, keras, tfllm
model = keras.saving.load_model({path!r})
ids = np.load({str(tmp_path / 'token_ids.npy')!r})
logits = model({{"token_ids": ids, "padding_mask": np.ones_like(ids)}})
np.testing.assert_allclose(keras.ops.convert_to_numpy(logits), np.load({str(tmp_path / 'expected.npy')!r}), atol=1e-6)
print("identical")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "identical" in result.stdout


def test_trains_with_jit_compile():
    model = GPT("gpt-test", dropout=0.1)
    inputs = gpt_inputs(batch=8, seq=16)
    labels = np.roll(inputs["token_ids"], -1, axis=1)
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    history = model.fit(inputs, labels, batch_size=8, epochs=20, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]


def test_fused_attention_gives_the_same_logits():
    model = GPT("gpt-test")
    fused = GPT("gpt-test", fused_attention=True)
    fused.set_weights(model.get_weights())
    inputs = gpt_inputs(batch=2, seq=16)
    inputs["padding_mask"][1, 12:] = 0
    real = inputs["padding_mask"].astype(bool)
    np.testing.assert_allclose(to_numpy(fused(inputs))[real], to_numpy(model(inputs))[real], atol=1e-4)


def test_preset_overrides():
    model = GPT("gpt-test", num_layers=3, dropout=0.0)
    assert model.num_layers == len(model.transformer_blocks) == 3
    same = GPT.from_preset("gpt-test", num_layers=3, dropout=0.0)
    assert same.get_config() == model.get_config()
    assert same.count_params() == model.count_params()


def test_config_is_kept_and_rebuilds_the_model():
    model = GPT("gpt-test", dropout=0.05, max_sequence_length=32, name="tiny")
    config = model.get_config()
    expected = {**CONFIG, "dropout": 0.05, "max_sequence_length": 32, "fused_attention": False}
    assert {key: config[key] for key in expected} == expected
    for key, value in expected.items():
        assert getattr(model, key) == value, key
    rebuilt = GPT.from_config(config)
    assert type(rebuilt) is GPT and rebuilt.name == "tiny"
    assert rebuilt.get_config() == config
    assert [tuple(w.shape) for w in rebuilt.weights] == [tuple(w.shape) for w in model.weights]
    assert rebuilt.transformer_blocks[0].dropout == 0.05


def test_reloaded_model_is_a_gpt_with_the_same_weights(tmp_path):
    model = GPT("gpt-test")
    path = str(tmp_path / "gpt.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded) is GPT and reloaded.num_layers == model.num_layers
    for a, b in zip(reloaded.weights, model.weights, strict=True):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    # The tie survives: the output projection is the reloaded token embedding itself.
    assert reloaded.token_embedding.tie_weights


def test_per_layer_sizes_build_blocks_of_their_own_and_reload(tmp_path):
    model = GPT("gpt-test", num_heads=[3, 1], head_dim=8, intermediate_dim=[16, 48])
    assert model.num_heads == [3, 1] and model.intermediate_dim == [16, 48] and model.head_dim == 8
    sizes = [(block.num_heads, block.head_dim, block.intermediate_dim) for block in model.transformer_blocks]
    assert sizes == [(3, 8, 16), (1, 8, 48)]
    path = str(tmp_path / "gpt.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert reloaded.get_config() == model.get_config()
    np.testing.assert_allclose(to_numpy(reloaded(gpt_inputs())), to_numpy(model(gpt_inputs())), atol=1e-6)
    # Without per-layer sizes, head_dim stays None in the config and the blocks' own.
    assert GPT("gpt-test").get_config()["head_dim"] is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(preset="gpt5"), "Unknown GPT preset 'gpt5'"),
        (dict(preset="bert-base"), "another model"),
        (dict(preset="gpt-test", num_heads=5), "num_heads=5, hidden_dim=32"),
        (dict(preset="gpt-test", hidden_dim=0), "hidden_dim=0"),
        (dict(preset="gpt-test", num_layers=-1), "num_layers=-1"),
        (dict(preset="gpt-test", dropout=1.0), "dropout=1.0"),
        (dict(preset="gpt-test", num_segments=2), "Unknown GPT config argument"),
        (dict(vocabulary_size=10), "GPT needs num_layers"),
        (dict(preset="gpt-test", num_heads=[2, 2, 2]), r"one per layer \(2\).*num_heads=\[2, 2, 2\]"),
        (dict(preset="gpt-test", intermediate_dim=[64, 0]), r"positive integers.*intermediate_dim=\[64, 0\]"),
        (dict(preset="gpt-test", num_heads=[2, 1]), "A list of `num_heads` needs `head_dim`"),
        (dict(preset="gpt-test", head_dim=0), "head_dim=0"),
    ],
)
def test_bad_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GPT(**kwargs)


def _gpt_parameter_count(vocabulary_size, num_layers, hidden_dim, intermediate_dim, max_sequence_length, **_):
    per_block = (
        4 * hidden_dim  # two layer norms
        + hidden_dim * 3 * hidden_dim + 3 * hidden_dim  # fused qkv
        + hidden_dim * hidden_dim + hidden_dim  # attention output
        + 2 * hidden_dim * intermediate_dim + intermediate_dim + hidden_dim  # feed-forward
    )
    return (vocabulary_size + max_sequence_length) * hidden_dim + num_layers * per_block + 2 * hidden_dim
