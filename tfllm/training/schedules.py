"""Learning-rate schedule: linear warm-up, then cosine or linear decay."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfllm")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `peak_learning_rate`, then cosine or linear decay.

    Args:
        peak_learning_rate: float, reached at the end of warm-up.
        total_steps: int, the step at which decay ends.
        warmup_steps: int, the length of the warm-up.
        decay: `"cosine"` or `"linear"`.
        final_learning_rate_ratio: the learning rate at `total_steps`, as a
            fraction of the peak (it stays there afterwards).

    Example:

    >>> schedule = WarmupDecay(1e-3, total_steps=1000, warmup_steps=100)
    >>> float(schedule(100))
    0.001
    """

    def __init__(self, peak_learning_rate, total_steps, warmup_steps=0, decay="cosine", final_learning_rate_ratio=0.1):
        if peak_learning_rate <= 0:
            raise ValueError(f"`peak_learning_rate` must be positive. Received: {peak_learning_rate}")
        if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
            raise ValueError(
                "Need 0 <= warmup_steps <= total_steps and total_steps >= 1. "
                f"Received: warmup_steps={warmup_steps}, total_steps={total_steps}"
            )
        if decay not in ("cosine", "linear"):
            raise ValueError(f"`decay` must be 'cosine' or 'linear'. Received: decay={decay!r}")
        if not 0 <= final_learning_rate_ratio <= 1:
            raise ValueError(f"`final_learning_rate_ratio` must be in [0, 1]. Received: {final_learning_rate_ratio}")
        self.peak_learning_rate = peak_learning_rate
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.decay = decay
        self.final_learning_rate_ratio = final_learning_rate_ratio

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = ops.maximum(float(self.warmup_steps), 1.0)
        progress = ops.clip((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 0.0, 1.0)
        if self.decay == "cosine":
            shape = 0.5 * (1.0 + ops.cos(math.pi * progress))
        else:
            shape = 1.0 - progress
        floor = self.final_learning_rate_ratio
        decayed = self.peak_learning_rate * (floor + (1.0 - floor) * shape)
        return ops.where(step < self.warmup_steps, self.peak_learning_rate * step / warmup, decayed)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "decay": self.decay,
            "final_learning_rate_ratio": self.final_learning_rate_ratio,
        }
