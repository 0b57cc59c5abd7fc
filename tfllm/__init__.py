"""tfllm: build, train, generate with and serve GPT- and BERT-style language models in Keras 3.

`import tfllm` registers every serializable tfllm object (layers, schedules, metrics), so
`.keras` files reload with no `custom_objects`. The other subpackages (`data`,
`tokenizers`, `generation`, `export`, `convert`, `evaluation`, `inspect`) load on first use.
"""

import importlib

from tfllm import layers, models, training

__version__ = "0.1.0"

_LAZY = ("data", "tokenizers", "generation", "export", "convert", "evaluation", "inspect")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"tfllm.{name}")
    raise AttributeError(f"module 'tfllm' has no attribute {name!r}")


__all__ = ["layers", "models", "training", *_LAZY]
