"""Make a trained model cheaper to adapt and to serve.

LoRA: `model.enable_lora(rank)` (on any tfllm `Backbone` or `Task`) adds low-rank adapters and
freezes the rest; `save_lora` / `load_lora` keep the adapters (and the task head) in a small
safetensors file; `merge_lora` folds them into the kernels for export.

int8: `quantize(model)` stores every Dense and Embedding kernel as int8 (weight-only; see
`tfllm.compression.quantization`); the model saves, reloads, generates and exports quantized.
"""

from tfllm.compression.lora import load_lora, merge_lora, save_lora
from tfllm.compression.quantization import quantize

__all__ = ["load_lora", "merge_lora", "quantize", "save_lora"]
