"""Checkpoint conversion: Hugging Face GPT-2 and BERT directories to tfllm, and back.

`from_huggingface(directory)` returns `(model, tokenizer)` from a local `transformers`
directory (`config.json`, `model.safetensors`, vocabulary files); `to_huggingface(model,
directory, tokenizer)` writes a tfllm GPT or BERT as one. Safetensors are read and written as
NumPy arrays, so neither direction needs PyTorch.
"""

from tfllm.convert.huggingface import from_huggingface, to_huggingface

__all__ = ["from_huggingface", "to_huggingface"]
