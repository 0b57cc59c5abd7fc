"""TensorFlow's pooled CPU allocator, which trains markedly faster on a CPU.

By default TensorFlow allocates CPU tensors with `malloc`, which maps every large buffer (the
logits, the feed-forward activations, XLA's scratch space) fresh from the kernel and unmaps it
when the buffer is freed, so every training step pays the page faults of its largest tensors
again. TensorFlow's BFC allocator, chosen with the environment variable
`TF_CPU_ALLOCATOR_USE_BFC`, keeps the freed memory in a pool instead. It is read once, when
TensorFlow creates its CPU device, hence the variable must be set before the first tensor.

Where TensorFlow runs oneDNN's custom ops (its default on CPUs with AVX-512 VNNI, AMX and
the like; it logs "oneDNN custom operations are on"), its oneDNN CPU allocator pools large
buffers already, whatever the variable says, and `pooled_cpu_allocator_in_use` reports so.
"""

import os
import warnings

import keras

ENVIRONMENT_VARIABLE = "TF_CPU_ALLOCATOR_USE_BFC"


def use_pooled_cpu_allocator():
    """Asks TensorFlow for its pooled (BFC) CPU allocator; returns whether it is in use.

    Call it first thing in a training program, before any tensor exists (imports are fine).
    A value of `TF_CPU_ALLOCATOR_USE_BFC` already in the environment is left as it is, so
    `TF_CPU_ALLOCATOR_USE_BFC=false` keeps `malloc`. The pool grows to the step's peak and keeps
    it: the process does not give that memory back until it ends.

    It matters most to XLA, which takes one large scratch buffer per step (docs/benchmarks.md
    has the measurements and their command).

    Returns:
        bool: whether TensorFlow's CPU allocator is the pooled one. Always `False` on other
        backends. Warns when the call came too late, after TensorFlow had made its CPU device.
    """
    if keras.config.backend() != "tensorflow":
        return False
    requested = ENVIRONMENT_VARIABLE not in os.environ
    os.environ.setdefault(ENVIRONMENT_VARIABLE, "true")
    in_use = pooled_cpu_allocator_in_use()
    if requested and not in_use:
        warnings.warn(
            "TensorFlow had already made its CPU device, so it keeps its default allocator. Call "
            "`use_pooled_cpu_allocator()` before the first tensor, or set "
            f"{ENVIRONMENT_VARIABLE}=true in the environment.",
            stacklevel=2,
        )
    return in_use


def pooled_cpu_allocator_in_use():
    """Whether TensorFlow allocates CPU tensors from its pooled (BFC) allocator.

    Only the pooled allocator keeps statistics, so this asks for them. Creates TensorFlow's
    CPU device if it does not exist yet (which fixes the allocator from then on).
    """
    if keras.config.backend() != "tensorflow":
        return False
    import tensorflow as tf

    try:
        tf.config.experimental.get_memory_info("CPU:0")
    except ValueError:
        return False
    return True
