"""Training: the AdamW factory and schedule, the cross-entropy loss, metrics, callbacks."""

from tfllm.training.allocator import pooled_cpu_allocator_in_use, use_pooled_cpu_allocator
from tfllm.training.compilation import default_jit_compile
from tfllm.training.losses import SparseCrossEntropy, sparse_cross_entropy
from tfllm.training.callbacks import ResumableBackup, TimeLimit, training_callbacks, write_metrics
from tfllm.training.metrics import SparseF1Score
from tfllm.training.optimizers import NO_WEIGHT_DECAY, create_optimizer
from tfllm.training.schedules import WarmupDecay

__all__ = [
    "NO_WEIGHT_DECAY",
    "ResumableBackup",
    "SparseCrossEntropy",
    "SparseF1Score",
    "TimeLimit",
    "WarmupDecay",
    "create_optimizer",
    "default_jit_compile",
    "pooled_cpu_allocator_in_use",
    "sparse_cross_entropy",
    "training_callbacks",
    "use_pooled_cpu_allocator",
    "write_metrics",
]
