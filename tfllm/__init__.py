"""tfllm: build, train, generate with and serve GPT- and BERT-style language models in Keras 3.

`import tfllm` registers every serializable tfllm object (layers, schedules, metrics), so
`.keras` files reload with no `custom_objects`. The other subpackages (`data`,
`tokenizers`, `generation`, `export`, `convert`, `evaluation`, `inspect`, `compression`) load on
first use.
"""

import importlib
import os
import sys


def _quiet_start():
    """For the `tfllm` command: TensorFlow writes start-up messages straight to the process's
    stderr while it loads (before its logging can be configured), which would bury the
    command's output. They are silenced while Keras loads TensorFlow, and only then."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The training commands train faster on TensorFlow's pooled CPU allocator, which must be
    # chosen before the devices start (`tfllm.training.use_pooled_cpu_allocator`).
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import keras  # noqa: F401

        if keras.config.backend() == "tensorflow":
            import tensorflow as tf

            # TensorFlow's devices start here, with their messages; a multi-worker strategy
            # must configure them first, so `--strategy multi-worker` leaves them to it.
            if "multi-worker" not in sys.argv:
                tf.config.list_logical_devices("CPU")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


if os.path.basename(sys.argv[0] if sys.argv else "") == "tfllm":
    _quiet_start()

from tfllm import layers, models, training  # noqa: E402

__version__ = "0.1.0"

_LAZY = ("data", "tokenizers", "generation", "export", "convert", "evaluation", "inspect", "compression")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"tfllm.{name}")
    raise AttributeError(f"module 'tfllm' has no attribute {name!r}")


__all__ = ["layers", "models", "training", *_LAZY]
