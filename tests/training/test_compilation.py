"""The default XLA setting for training: XLA, except mixed_bfloat16 on a bfloat16 CPU."""

import keras
import pytest
import tensorflow as tf

from tfllm.training import default_jit_compile
from tfllm.training.compilation import cpu_has_bfloat16


def test_float32_trains_compiled_except_on_pytorch():
    assert default_jit_compile("float32") is (keras.config.backend() != "torch")


@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="the rule is for TensorFlow")
def test_bfloat16_on_a_tensorflow_cpu_trains_without_xla_only_where_the_cpu_has_bfloat16():
    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    assert default_jit_compile("mixed_bfloat16") is (on_gpu or not cpu_has_bfloat16())


@pytest.mark.parametrize(
    "line, expected",
    [
        ("flags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 amx_tile", True),
        ("flags\t\t: fpu sse2 avx2 fma amx_bf16", True),
        ("Features\t: fp asimd bf16 i8mm", True),
        ("flags\t\t: fpu sse2 avx2 fma avx512f avx512bw", False),
        ("Features\t: fp asimd sve", False),
    ],
)
def test_cpu_bfloat16_flags(tmp_path, line, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: some CPU\n{line}\n\nprocessor\t: 1\n{line}\n")
    assert cpu_has_bfloat16(str(cpuinfo)) is expected


def test_unreadable_cpuinfo_means_no_bfloat16(tmp_path):
    assert cpu_has_bfloat16(str(tmp_path / "missing")) is False
