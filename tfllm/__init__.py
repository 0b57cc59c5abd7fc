"""tfllm: build, train, generate with and serve GPT- and BERT-style language models in Keras 3."""

from tfllm import layers, models

__version__ = "0.1.0"

__all__ = ["layers", "models"]
