"""tfllm.training.distribute: one tiny GPT trained alone, under MirroredStrategy over two logical
CPU devices, and by two MultiWorkerMirroredStrategy workers on localhost gives the same losses;
and the strategy, TF_CONFIG and batch-size checks say what is wrong."""

import json
import os
import sys
import types

import keras
import numpy as np
import pytest

from tests.training import distributed_fit
from tests.workers import run_all, worker_environments
from tfllm.training import distribute

SCRIPT = distributed_fit.__file__
STEPS = 4
# Seconds a distributed case may take in all (each takes about 20 here); a worker that never
# comes up leaves the others waiting indefinitely, so runs end at this limit, failing.
TIMEOUT = 300
# The replicas sum the same per-example gradients in another order (each half of the batch,
# then across replicas), so the weights differ by float32 rounding after the first step. With
# plain SGD that stays a few units in the last place of the loss (measured: at most 9.5e-7,
# two units, on losses near 6.25; docs/distributed.md has the numbers); 1e-5 is 20 units. Gradients summed over
# the two replicas instead of averaged would move the second loss by 3.5e-3 and the fourth by
# 4.4e-2 (measured by doubling the learning rate).
ATOL = 1e-5


def _run(name, environments, directory, timeout=TIMEOUT):
    """`distributed_fit.py name` in one process per environment: their JSON results."""
    command = [sys.executable, SCRIPT, name, str(STEPS)]
    outputs = run_all([command] * len(environments), environments, directory, timeout)
    return [json.loads(output.strip().splitlines()[-1]) for output in outputs]


@pytest.fixture(scope="module")
def single_device_losses():
    """The losses without a strategy, trained in this process (no device set-up needed)."""
    result = distributed_fit.train("none", STEPS)
    assert result["replicas"] == 1 and result["chief"]
    losses = result["losses"]
    assert len(losses) == STEPS and losses[-1] < losses[0], losses  # it trains
    return losses


def test_mirrored_over_two_devices_gives_the_single_device_losses(single_device_losses, tmp_path):
    (result,) = _run("mirrored", [{}], tmp_path)
    assert result["replicas"] == 2 and result["chief"]
    np.testing.assert_allclose(result["losses"], single_device_losses, rtol=0, atol=ATOL)


def test_two_localhost_workers_give_the_single_device_losses(single_device_losses, tmp_path):
    """Two MultiWorkerMirroredStrategy workers through `distribute.fit`: plain `model.fit`
    fails there before the first step (keras-team/keras#20585), so this fails if tfllm's
    workaround (`distribute.multi_worker_compatible`) stops working."""
    chief, worker = _run("multi-worker", worker_environments(2), tmp_path)
    assert chief["replicas"] == worker["replicas"] == 2
    assert chief["chief"] and not worker["chief"]
    np.testing.assert_allclose(chief["losses"], single_device_losses, rtol=0, atol=ATOL)
    np.testing.assert_allclose(worker["losses"], chief["losses"], rtol=0, atol=ATOL)


def test_a_worker_whose_partner_never_comes_up_fails_at_the_time_limit(tmp_path):
    """Worker 0 of two, alone, waits for worker 1; the run stops at its limit, saying so."""
    with pytest.raises(pytest.fail.Exception, match="process 0 of 1 did not finish within 15 s"):
        _run("multi-worker", worker_environments(2)[:1], tmp_path, timeout=15)


def _tf_config(**config):
    return {"TF_CONFIG": json.dumps(config)}


WORKERS = {"worker": ["host1:12345", "host2:12345"]}


@pytest.mark.parametrize(
    "environ, message",
    [
        ({}, "TF_CONFIG environment variable, which is not set"),
        ({"TF_CONFIG": "{'cluster': "}, "TF_CONFIG is not valid JSON"),
        ({"TF_CONFIG": "[1, 2]"}, "must be a JSON object"),
        (_tf_config(task={"type": "worker", "index": 0}), "has no 'cluster'"),
        (_tf_config(cluster={"worker": []}, task={"type": "worker", "index": 0}), "non-empty list"),
        (_tf_config(cluster=WORKERS), "has no 'task'"),
        (_tf_config(cluster=WORKERS, task={"type": "worker"}), "has no 'task'"),
        (_tf_config(cluster=WORKERS, task={"type": "worker", "index": 2}), "task index 2 is out of range"),
        (_tf_config(cluster=WORKERS, task={"type": "worker", "index": -1}), "task index -1 is out of range"),
        (_tf_config(cluster=WORKERS, task={"type": "worker", "index": "0"}), "task index '0' is out of range"),
        (_tf_config(cluster=WORKERS, task={"type": "chief", "index": 0}), "task type 'chief' is not a job"),
    ],
)
def test_bad_tf_config_is_named(environ, message):
    with pytest.raises(ValueError, match=message):
        distribute.cluster_config(environ)


def test_a_good_tf_config_is_returned():
    environ = _tf_config(cluster={"chief": ["a:1"], "worker": ["b:1"]}, task={"type": "worker", "index": 0})
    assert distribute.cluster_config(environ)["task"] == {"type": "worker", "index": 0}


def test_multi_worker_strategy_checks_tf_config_first(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "ps", "index": 0}}')
    with pytest.raises(ValueError, match="task type 'ps' is not a job"):
        distribute.strategy("multi-worker")


def test_strategy_names_and_backend(monkeypatch):
    import tensorflow as tf

    assert distribute.strategy("none") is tf.distribute.get_strategy()
    with pytest.raises(ValueError, match="one of none, mirrored, multi-worker. Received: name='tpu'"):
        distribute.strategy("tpu")
    monkeypatch.setattr(keras.config, "backend", lambda: "jax")
    with pytest.raises(ValueError, match="exist only on the TensorFlow backend; Keras runs on 'jax'"):
        distribute.strategy("mirrored")


def test_global_batch_must_divide_among_replicas():
    two_replicas = types.SimpleNamespace(num_replicas_in_sync=2)
    assert distribute.per_replica_batch_size(8, two_replicas) == 4
    for size in (9, 0):
        with pytest.raises(ValueError, match=f"multiple of the 2 replicas.*global_batch_size={size}"):
            distribute.per_replica_batch_size(size, two_replicas)


def test_only_the_chief_writes(tmp_path):
    import tensorflow as tf

    def task(cluster, task_type, task_id):
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id
        )
        return types.SimpleNamespace(cluster_resolver=resolver)

    assert distribute.is_chief(tf.distribute.get_strategy())
    assert distribute.is_chief(task(WORKERS, "worker", 0))
    assert not distribute.is_chief(task(WORKERS, "worker", 1))
    with_chief = {"chief": ["host0:1"], **WORKERS}
    assert distribute.is_chief(task(with_chief, "chief", 0))
    assert not distribute.is_chief(task(with_chief, "worker", 0))
    assert distribute.output_dir(str(tmp_path), task(WORKERS, "worker", 0)) == str(tmp_path)
    elsewhere = distribute.output_dir(str(tmp_path), task(WORKERS, "worker", 1))
    assert os.path.isdir(elsewhere) and not elsewhere.startswith(str(tmp_path))
    os.rmdir(elsewhere)
