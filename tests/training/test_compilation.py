"""The default XLA setting for training: XLA, except mixed_bfloat16 on a TensorFlow CPU."""

import keras
import pytest
import tensorflow as tf

from tfllm.training import default_jit_compile


def test_float32_trains_compiled_except_on_pytorch():
    assert default_jit_compile("float32") is (keras.config.backend() != "torch")


@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="the rule is for TensorFlow")
def test_bfloat16_on_a_tensorflow_cpu_trains_without_xla():
    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    assert default_jit_compile("mixed_bfloat16") is on_gpu
