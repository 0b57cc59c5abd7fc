"""Whether to compile training steps with XLA: the setting that trains fastest here."""

import keras

# /proc/cpuinfo flags of CPUs with bfloat16 arithmetic, which oneDNN's matrix products use.
_BFLOAT16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def default_jit_compile(precision="float32"):
    """The `jit_compile` to train with at `precision`: XLA, except bfloat16 on a bfloat16 CPU.

    XLA fuses the element-wise work of a step, which on the TensorFlow backend on CPU trains
    faster than the plain graph. But XLA's CPU backend does not use oneDNN's bfloat16 matrix
    products, so in `mixed_bfloat16` on a CPU with bfloat16 instructions (AVX512-BF16, AMX,
    Arm's BF16) the plain graph is faster. A CPU without them emulates bfloat16 either way,
    and there XLA is faster again (`python -m benchmarks` measures every case;
    docs/benchmarks.md). A GPU keeps XLA. On JAX the step is always compiled (`True`); on PyTorch this is Keras's own default,
    `False` (no `torch.compile`).

    Args:
        precision: str, a Keras dtype policy name (`"float32"`, `"mixed_bfloat16"`, ...).

    Returns:
        bool, for `model.compile(jit_compile=...)`.

    Example:

    >>> default_jit_compile("float32")
    True
    """
    backend = keras.config.backend()
    if backend != "tensorflow":
        return backend == "jax"
    if precision != "mixed_bfloat16":
        return True
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU")) or not cpu_has_bfloat16()


def cpu_has_bfloat16(cpuinfo="/proc/cpuinfo"):
    """Whether the CPU has bfloat16 arithmetic, from the flags in `cpuinfo` (Linux).

    Returns `False` where the file cannot be read (the flags are then unknown).
    """
    try:
        with open(cpuinfo) as file:
            for line in file:
                name, _, value = line.partition(":")
                if name.strip() in ("flags", "Features"):
                    return not _BFLOAT16_CPU_FLAGS.isdisjoint(value.split())
    except OSError:
        pass
    return False
