"""Make a trained model cheaper to adapt and to serve.

LoRA: `model.enable_lora(rank)` (on any tfllm `Backbone` or `Task`) adds low-rank adapters and
freezes the rest; `save_lora` / `load_lora` keep the adapters (and the task head) in a small
safetensors file; `merge_lora` folds them into the kernels for export.

int8: `quantize(model)` stores every Dense and Embedding kernel as int8 (weight-only; see
`tfllm.compression.quantization`); the model saves, reloads, generates and exports quantized.
`cast(model, "bfloat16")` gives a copy with 16-bit weights and products.

Distillation: `Distiller(teacher, student)` trains a smaller student with `fit` on the labels
and the teacher's softened predictions; `truncated(teacher, k)` starts a student from k of the
teacher's transformer blocks.

Pruning: `prune(model, heads=..., feedforward_units=...)` removes attention heads and
feed-forward units and rebuilds a smaller model of the same class; `head_importance` and
`feedforward_importance` rank them by the gradient of a gate on their outputs (Michel et al.,
2019), and `prune_by_importance` ranks and prunes in one call (then fine-tune to recover).
"""

from tfllm.compression.distillation import Distiller, truncated
from tfllm.compression.lora import load_lora, merge_lora, save_lora
from tfllm.compression.pruning import feedforward_importance, head_importance, prune, prune_by_importance
from tfllm.compression.quantization import cast, quantize

__all__ = [
    "cast",
    "Distiller",
    "feedforward_importance",
    "head_importance",
    "load_lora",
    "merge_lora",
    "prune",
    "prune_by_importance",
    "quantize",
    "save_lora",
    "truncated",
]
