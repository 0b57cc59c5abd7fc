"""Make a trained model cheaper to adapt and to serve.

LoRA: `model.enable_lora(rank)` (on any tfllm `Backbone` or `Task`) adds low-rank adapters and
freezes the rest; `save_lora` / `load_lora` keep the adapters (and the task head) in a small
safetensors file; `merge_lora` folds them into the kernels for export.
"""

from tfllm.compression.lora import load_lora, merge_lora, save_lora

__all__ = ["load_lora", "merge_lora", "save_lora"]
