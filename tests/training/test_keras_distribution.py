"""tfllm.training.distribute on JAX: one tiny GPT trained on one device, under DataParallel and
under ModelParallel over two host CPU devices (and, marked slow, over two JAX processes on
localhost) gives the same losses; ModelParallel shards exactly the kernels tfllm's layout map
names and saves a model that loads on one device; and the checks say what is wrong."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.training import keras_distribution_fit
from tests.workers import free_ports, run_all
from tfllm.training import distribute

STEPS = 4
# The JAX case takes about 20 s here (three trainings in one process); this is its limit.
TIMEOUT = 300
# Both distributions compute the same sums over the batch and over the sharded weights in
# another order, so the losses differ by float32 rounding: measured at most 9.5e-7 (two units
# in the last place at 6.25, DataParallel; ModelParallel matched to the bit); 1e-5 is 20
# units. Gradients summed over the two data-parallel shares instead of averaged would double
# the SGD step and move the second loss by 5.4e-3 and the fourth by 4.5e-2 (measured with a
# learning rate of 2).
ATOL = 1e-5
SHARDED = {
    "token_embedding/embeddings": ["model", None],
    "qkv_dense/kernel": [None, "model"],
    "attention_output_dense/kernel": ["model", None],
    "feedforward_intermediate_dense/kernel": [None, "model"],
    "feedforward_output_dense/kernel": ["model", None],
}


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    """keras_distribution_fit.py's JSON, run on JAX with two host CPU devices."""
    directory = tmp_path_factory.mktemp("keras-distribution")
    environment = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
    }
    command = [sys.executable, keras_distribution_fit.__file__, str(directory), str(STEPS)]
    process = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=TIMEOUT)
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads(process.stdout.strip().splitlines()[-1])


def test_data_and_model_parallel_give_the_single_device_losses(jax_run):
    assert jax_run["devices"] == 2
    losses = jax_run["losses"]
    assert len(losses["single"]) == STEPS and losses["single"][-1] < losses["single"][0], losses  # it trains
    np.testing.assert_allclose(losses["data"], losses["single"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(losses["model"], losses["single"], rtol=0, atol=ATOL)


def test_model_parallel_shards_the_megatron_kernels_and_replicates_the_rest(jax_run):
    layouts = jax_run["layouts"]["model"]
    for path, (devices, axes) in layouts.items():
        suffix = path.split("/", 1)[1] if path.startswith("transformer_block_") else path
        assert devices == 2, path
        assert axes == SHARDED.get(suffix, [None] * len(axes)), path
    sharded = [path for path, (_, axes) in layouts.items() if "model" in axes]
    assert len(sharded) == 1 + 4 * 2  # the embedding and four kernels in each of gpt-test's two blocks


def test_data_parallel_replicates_every_weight(jax_run):
    assert all(devices == 2 and set(axes) <= {None} for devices, axes in jax_run["layouts"]["data"].values())


def test_a_model_parallel_model_reloads_on_one_device(jax_run):
    """Saved after ModelParallel training and loaded with no distribution: every weight on one
    device, the same predictions up to the rounding of the sharded sums."""
    assert jax_run["reloaded_devices"] == ["cpu:0"]
    assert jax_run["reloaded_difference"] < 1e-5


def test_jax_errors_name_the_problem(jax_run):
    errors = jax_run["errors"]
    assert "positive multiple of the 2 replicas in sync" in errors["batch"]
    assert "global_batch_size=3" in errors["batch"]
    assert "must be one of data, model" in errors["name"]
    assert "exist only on the TensorFlow backend" in errors["strategy"]
    assert "must be multiples of 2. Received: vocabulary_size=301" in errors["shardable"]
    # train_gpt.py's flags reach the same checks.
    assert "positive multiple of the 2 replicas in sync" in errors["flag_batch"]
    assert "exist only on the TensorFlow backend" in errors["flag_strategy"]


# Slow (about 32 s per case: two JAX processes on two cores): run with `pytest -m slow`.
@pytest.mark.slow
@pytest.mark.parametrize("name", ["data", "model"])
def test_two_localhost_jax_processes_give_the_single_device_losses(name, jax_run, tmp_path):
    """`keras.distribution.initialize` joins two JAX processes of one CPU device each; the
    distribution spans both, and each process logs the single-device losses."""
    (port,) = free_ports(1)
    environments = [
        {
            "KERAS_BACKEND": "jax",
            "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"localhost:{port}",
            "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
            "KERAS_DISTRIBUTION_PROCESS_ID": str(index),
            "XLA_FLAGS": "",
        }
        for index in range(2)
    ]
    command = [sys.executable, keras_distribution_fit.__file__, "--processes", name, str(STEPS)]
    outputs = run_all([command] * 2, environments, tmp_path, timeout=TIMEOUT)
    results = [json.loads(output.strip().splitlines()[-1]) for output in outputs]
    assert [result["process"] for result in results] == [0, 1]
    assert all(result["devices"] == 2 for result in results)
    for result in results:
        np.testing.assert_allclose(result["losses"], jax_run["losses"]["single"], rtol=0, atol=ATOL)


def test_the_layout_map_matches_bert_and_nested_paths():
    """The regexes match a BERT's paths and a backbone inside a task model, and nothing else."""
    shared = {f"transformer_block_3/{path}": axes for path, axes in SHARDED.items() if "/kernel" in path}
    expected = {"token_embedding/embeddings": ("model", None), "bert/token_embedding/embeddings": ("model", None)}
    expected.update({path: tuple(axes) for path, axes in shared.items()})
    replicated = [
        "position_embedding/embeddings",
        "segment_embedding/embeddings",
        "pooler_dense/kernel",
        "transformer_block_0/qkv_dense/bias",
        "transformer_block_0/lora_query_a",
        "my_token_embedding/embeddings",
    ]
    for path, axes in expected.items():
        assert _layout(path) == axes, path
    for path in replicated:
        assert _layout(path) is None, path


def _layout(path):
    import re

    matches = [axes for pattern, axes in distribute.MEGATRON_LAYOUT.items() if re.fullmatch(pattern, path)]
    assert len(matches) <= 1, path  # LayoutMap refuses a path that two entries match
    return matches[0] if matches else None


def test_keras_distribution_on_tensorflow_says_it_needs_jax(monkeypatch):
    monkeypatch.setattr(keras.config, "backend", lambda: "tensorflow")
    with pytest.raises(ValueError, match="only on the JAX backend; Keras runs on 'tensorflow'.*tf.distribute"):
        distribute.distribution("data")


def test_an_unknown_distribution_is_refused():
    with pytest.raises(ValueError, match="must be one of data, model. Received: name='pipeline'"):
        distribute.distribution("pipeline")
