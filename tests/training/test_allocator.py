"""TensorFlow's pooled CPU allocator: asked for before the first tensor, in fresh processes."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")

# Prints what `use_pooled_cpu_allocator` returned and warned, then whether the allocator is pooled.
PROGRAM = """
import json, warnings
import tensorflow as tf
from tfllm.training import pooled_cpu_allocator_in_use, use_pooled_cpu_allocator
if {tensor_first}:
    tf.ones((4,))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    returned = use_pooled_cpu_allocator()
tf.ones((256, 256))
print(json.dumps(dict(returned=returned, pooled=pooled_cpu_allocator_in_use(),
                      warnings=[str(w.message) for w in caught])))
"""


def run(tensor_first=False, **environment):
    env = {key: value for key, value in os.environ.items() if key != "TF_CPU_ALLOCATOR_USE_BFC"}
    # oneDNN's custom ops (TensorFlow's default on CPUs with AVX-512 VNNI, AMX, ...) bring an
    # allocator that pools anyway; without them `malloc` is the default this module replaces.
    env.update(environment, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", TF_ENABLE_ONEDNN_OPTS="0")
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM.format(tensor_first=tensor_first)],
        capture_output=True, text=True, env=env, cwd=ROOT, check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", autouse=True)
def tensorflow_backend_only():
    import keras

    if keras.config.backend() != "tensorflow":
        pytest.skip("the allocator is TensorFlow's")


def test_called_before_the_first_tensor_it_takes_effect():
    assert run() == dict(returned=True, pooled=True, warnings=[])


def test_an_explicit_false_in_the_environment_keeps_malloc():
    assert run(TF_CPU_ALLOCATOR_USE_BFC="false") == dict(returned=False, pooled=False, warnings=[])


def test_called_too_late_it_says_so():
    outcome = run(tensor_first=True)
    assert not outcome["returned"] and not outcome["pooled"]
    assert len(outcome["warnings"]) == 1 and "before the first tensor" in outcome["warnings"][0]
