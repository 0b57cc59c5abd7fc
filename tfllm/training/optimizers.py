"""The optimizer factory: AdamW with warm-up/decay, no decay on biases, norms and embeddings."""

import keras

from tfllm.training.schedules import WarmupDecay

# Variables whose path contains one of these are not weight-decayed.
NO_WEIGHT_DECAY = ("bias", "gamma", "beta", "embeddings")


def create_optimizer(
    learning_rate,
    total_steps,
    warmup_steps=None,
    decay="cosine",
    weight_decay=0.01,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-6,
    global_clipnorm=1.0,
    gradient_accumulation_steps=None,
    final_learning_rate_ratio=0.1,
):
    """Returns a `keras.optimizers.AdamW` set up for transformer training.

    - Linear warm-up for `warmup_steps` (default 10% of `total_steps`), then cosine
      or linear decay to `final_learning_rate_ratio * learning_rate`.
    - Decoupled weight decay on the weight matrices only: biases, layer-norm scales
      and offsets (`gamma`, `beta`) and embedding tables are excluded.
    - Gradients clipped to a global norm of `global_clipnorm` (None to disable).
    - `gradient_accumulation_steps`: apply the averaged gradients of N batches at
      once (an effective batch N times larger). `total_steps` and `warmup_steps`
      count optimizer updates, i.e. batches / N.

    Example:

    >>> optimizer = create_optimizer(3e-4, total_steps=10_000)
    >>> model.compile(optimizer=optimizer, loss=..., jit_compile=True)
    """
    if warmup_steps is None:
        warmup_steps = max(1, total_steps // 10)
    if gradient_accumulation_steps is not None and gradient_accumulation_steps < 2:
        gradient_accumulation_steps = None
    optimizer = keras.optimizers.AdamW(
        learning_rate=WarmupDecay(learning_rate, total_steps, warmup_steps, decay, final_learning_rate_ratio),
        weight_decay=weight_decay,
        beta_1=beta_1,
        beta_2=beta_2,
        epsilon=epsilon,
        global_clipnorm=global_clipnorm,
        gradient_accumulation_steps=gradient_accumulation_steps,
    )
    optimizer.exclude_from_weight_decay(var_names=list(NO_WEIGHT_DECAY))
    return optimizer
