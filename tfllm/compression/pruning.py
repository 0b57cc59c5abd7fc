"""Structured pruning: attention heads and feed-forward units removed, the model rebuilt smaller.

- `head_importance(model, dataset)` and `feedforward_importance(model, dataset)` score each
  attention head and each feed-forward unit as Michel et al. (2019, "Are Sixteen Heads Really
  Better than One?") do: the gradient of the loss with respect to a gate on the head's (or
  unit's) output.
- `prune(model, heads=..., feedforward_units=...)` returns a new model of the same class with
  per-layer `num_heads` and `intermediate_dim` and the kept weights copied: fewer parameters
  and fewer products, not zeros.
- `prune_by_importance(model, dataset, head_fraction=0.5)` ranks and prunes in one call.

A gate `xi_h` on head `h`'s output costs no layer change: the attention output is
`sum_h xi_h * attended_h @ W_h` with `W_h` the rows of `attention_output_dense.kernel` that
head `h` feeds, so at `xi_h = 1`, `dL/dxi_h = sum(W_h * dL/dW_h)`. A feed-forward unit's gate is
the same sum over its row of `feedforward_output_dense.kernel`.
"""

import copy

import keras
import numpy as np
from keras import ops

from tfllm._validation import check_int, check_positive_int, check_rate
from tfllm.models.backbone import Backbone, Task


def head_importance(model, dataset, loss=None, steps=None):
    """Each attention head's importance: Michel et al.'s `|dL/dxi_h|` of a gate on its output.

    The absolute gradient of each batch's loss with respect to the head's gate, summed over the
    batches, then divided by its layer's L2 norm (as the paper does), so the scores of different
    layers compare. A head whose output rows are all zero scores 0.

    Args:
        model: a tfllm `Backbone` or `Task` (not quantized, without LoRA adapters).
        dataset: batches `(x, y)` or `(x, y, sample_weight)`, e.g. a `tf.data.Dataset`.
        loss: optional `loss(y_true, y_pred, sample_weight)`; default: the model's compiled
            loss (`model.compute_loss`).
        steps: optional int: use the first `steps` batches only.

    Returns:
        A list of one float32 NumPy array per transformer block, `(num_heads,)` each.

    Example:

    >>> classifier.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> scores = head_importance(classifier, train.take(32))
    """
    return _importance(model, dataset, loss, steps)[0]


def feedforward_importance(model, dataset, loss=None, steps=None):
    """Each feed-forward unit's importance, computed as `head_importance`'s for heads (the gate
    on the unit's activation); a list of one `(intermediate_dim,)` array per block."""
    return _importance(model, dataset, loss, steps)[1]


def prune(model, heads=None, feedforward_units=None):
    """A new, smaller model of `model`'s class without the given heads and feed-forward units.

    Each block keeps its other heads' columns of the query, key and value thirds of
    `qkv_dense` (kernel and bias) and their rows of `attention_output_dense.kernel`, and its
    other units' columns of `feedforward_intermediate_dense` and rows of
    `feedforward_output_dense.kernel`; every other weight is copied. The new model computes
    exactly what `model` does with the removed heads' and units' output rows set to zero. Its
    config holds per-layer `num_heads` and `intermediate_dim` lists and `head_dim`. `model` is
    left as it is.

    Args:
        model: a tfllm `Backbone` (`GPT`, `BERT`) or `Task` (`BERTClassifier`, ...), not
            quantized (prune first, then quantize) and without LoRA adapters (merge them first,
            `tfllm.compression.merge_lora`).
        heads: optional `{layer index: [head indices to remove]}`.
        feedforward_units: optional `{layer index: [unit indices to remove]}`.

    Returns:
        The pruned model (uncompiled).

    Raises:
        ValueError: a layer index or a head or unit index out of range or repeated, every head
            or every unit of a layer removed, a quantized model or one with LoRA adapters.

    Example:

    >>> smaller = prune(classifier, heads={0: [1, 3], 1: [0]}, feedforward_units={0: [5, 9]})
    >>> smaller.backbone.num_heads
    [2, 3]
    """
    backbone = _check_prunable(model)
    blocks = backbone.transformer_blocks
    kept_heads = _kept(heads, [block.num_heads for block in blocks], "heads")
    kept_units = _kept(feedforward_units, [block.intermediate_dim for block in blocks], "feedforward_units")

    config = copy.deepcopy(model.get_config())
    backbone_config = config["backbone"]["config"] if isinstance(model, Task) else config
    if heads:
        backbone_config["num_heads"] = [len(kept) for kept in kept_heads]
        backbone_config["head_dim"] = blocks[0].head_dim
    if feedforward_units:
        backbone_config["intermediate_dim"] = [len(kept) for kept in kept_units]

    values = {weight.path: ops.convert_to_numpy(weight) for weight in model.weights}
    for block, head_rows, unit_rows in zip(blocks, kept_heads, kept_units):
        values.update(_pruned_block(block, head_rows, unit_rows))
    pruned = type(model).from_config(config)
    for weight in pruned.weights:
        weight.assign(values[weight.path])
    return pruned


def prune_by_importance(model, dataset, head_fraction=0.5, feedforward_fraction=0.0, loss=None, steps=None):
    """Ranks heads and units on `dataset` (`head_importance`) and prunes the least important.

    Heads are ranked across all layers together (Michel et al.'s global ranking) and the
    lowest `head_fraction` of them removed, keeping at least one head in every layer; each
    layer loses the lowest `feedforward_fraction` of its own feed-forward units. Recovery
    fine-tuning is the caller's: compile the pruned model and `fit` it for a few hundred steps.

    Args:
        model, dataset, loss, steps: as for `head_importance`.
        head_fraction: float in [0, 1): the share of all heads to remove.
        feedforward_fraction: float in [0, 1): the share of each layer's units to remove.

    Returns:
        `(pruned_model, report)`: the report holds `heads_before` and `heads_after` (per
        layer), `heads_removed` (`{layer: [head indices]}`), `intermediate_before` and
        `intermediate_after`, `parameters_before` and `parameters_after`.
    """
    head_fraction = check_rate("head_fraction", head_fraction)
    feedforward_fraction = check_rate("feedforward_fraction", feedforward_fraction)
    backbone = _check_prunable(model)
    blocks = backbone.transformer_blocks
    head_scores, unit_scores = _importance(model, dataset, loss, steps)

    heads = {}
    count = [block.num_heads for block in blocks]
    ranked = sorted(
        (score, layer, head) for layer, scores in enumerate(head_scores) for head, score in enumerate(scores)
    )
    to_remove = round(head_fraction * sum(count))
    for _, layer, head in ranked:
        if to_remove == 0:
            break
        if count[layer] > 1:
            heads.setdefault(layer, []).append(head)
            count[layer] -= 1
            to_remove -= 1

    units = {}
    for layer, scores in enumerate(unit_scores):
        remove = min(round(feedforward_fraction * len(scores)), len(scores) - 1)
        if remove:
            units[layer] = np.argsort(scores, kind="stable")[:remove].tolist()

    pruned = prune(model, heads=heads, feedforward_units=units)
    pruned_blocks = _check_prunable(pruned).transformer_blocks
    report = {
        "heads_before": [block.num_heads for block in blocks],
        "heads_after": [block.num_heads for block in pruned_blocks],
        "heads_removed": {layer: sorted(removed) for layer, removed in sorted(heads.items())},
        "intermediate_before": [block.intermediate_dim for block in blocks],
        "intermediate_after": [block.intermediate_dim for block in pruned_blocks],
        "parameters_before": model.count_params(),
        "parameters_after": pruned.count_params(),
    }
    return pruned, report


def _importance(model, dataset, loss, steps):
    """`(head scores, unit scores)`: per block, the summed absolute gate gradients, each
    layer's divided by its L2 norm."""
    blocks = _check_prunable(model).transformer_blocks
    if loss is None and getattr(model, "loss", None) is None:
        raise ValueError(f"{model.name} has no compiled loss: compile it with its loss, or pass `loss`.")
    if steps is not None:
        steps = check_positive_int("steps", steps)
    kernels = [kernel for block in blocks for kernel in _gated_kernels(block)]
    head_totals = [np.zeros(block.num_heads) for block in blocks]
    unit_totals = [np.zeros(block.intermediate_dim) for block in blocks]
    batches = 0
    for batch in dataset:
        if steps is not None and batches == steps:
            break
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        gradients = _gradients(model, kernels, x, y, sample_weight, loss)
        for index, block in enumerate(blocks):
            rows = _row_gates(kernels[2 * index], gradients[2 * index])
            # A head's gate gradient sums those of the rows it feeds: (heads, head_dim) -> (heads,)
            head_totals[index] += np.abs(rows.reshape(block.num_heads, block.head_dim).sum(axis=1))
            unit_totals[index] += np.abs(_row_gates(kernels[2 * index + 1], gradients[2 * index + 1]))
        batches += 1
    if batches == 0:
        raise ValueError("`dataset` gave no batches to compute the importance on.")
    return [_normalized(totals) for totals in head_totals], [_normalized(totals) for totals in unit_totals]


def _gated_kernels(block):
    """The kernels whose rows carry each head's and each unit's output."""
    return [block.attention_output_dense.kernel, block.feedforward_output_dense.kernel]


def _row_gates(kernel, gradient):
    """`sum(W * dL/dW)` over each row of `kernel`: the gradient of a gate on that row's input."""
    products = ops.cast(kernel, "float32") * ops.cast(gradient, "float32")
    return ops.convert_to_numpy(ops.sum(products, axis=1)).astype("float64")


def _normalized(scores):
    norm = np.linalg.norm(scores)
    return (scores / norm if norm > 0 else scores).astype("float32")


def _gradients(model, variables, x, y, sample_weight, loss):
    """The gradient of the batch's loss with respect to each of `variables` (inference mode)."""

    def loss_value():
        y_pred = model(x, training=False)
        if loss is not None:
            return loss(y, y_pred, sample_weight)
        return model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)

    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        watched = [variable.value for variable in variables]  # the tf.Variables
        with tf.GradientTape() as tape:
            tape.watch(watched)  # frozen weights too
            value = loss_value()
        return tape.gradient(value, watched)
    if backend == "jax":
        import jax

        def value_of(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return loss_value()

        return jax.grad(value_of)([variable.value for variable in variables])
    raise ValueError(f"Importance scores need the TensorFlow or JAX backend. Running on: {backend}")


def _check_prunable(model):
    """The backbone of a tfllm model that can be pruned, or a `ValueError`."""
    if isinstance(model, Task):
        backbone = model.backbone
    elif isinstance(model, Backbone):
        backbone = model
    else:
        raise ValueError(f"Pruning works on tfllm models (a Backbone or a Task); received a {type(model).__name__}.")
    if backbone.lora is not None:
        raise ValueError(
            f"{model.name} has LoRA adapters: merge them first (tfllm.compression.merge_lora), then prune."
        )
    if model.quantization is not None or backbone.quantization is not None:
        raise ValueError(f"{model.name} is quantized: prune the float model, then quantize it.")
    return backbone


def _kept(removals, sizes, name):
    """For each layer, the sorted indices left after `removals` (`{layer: [indices]}`)."""
    kept = [list(range(size)) for size in sizes]
    if removals is None:
        return kept
    if not isinstance(removals, dict):
        raise ValueError(f"`{name}` must be a dict {{layer index: [indices to remove]}}. Received: {name}={removals!r}")
    what = "head" if name == "heads" else "unit"
    for layer, indices in removals.items():
        layer = check_int(f"{name} layer index", layer, 0, len(sizes) - 1)
        indices = [check_int(f"{name}[{layer}] {what} index", index, 0, sizes[layer] - 1) for index in indices]
        if len(set(indices)) != len(indices):
            raise ValueError(f"`{name}[{layer}]` names a {what} more than once. Received: {sorted(indices)}")
        if len(indices) == sizes[layer]:
            raise ValueError(
                f"`{name}[{layer}]` removes every {what} of layer {layer} ({sizes[layer]}); keep at least one."
            )
        kept[layer] = [index for index in kept[layer] if index not in set(indices)]
    return kept


def _pruned_block(block, kept_heads, kept_units):
    """`{weight path: NumPy value}` of `block`'s projections with only the kept heads and units."""
    heads, head_dim, hidden = block.num_heads, block.head_dim, block.hidden_dim
    qkv, attention_output = block.qkv_dense, block.attention_output_dense
    intermediate, output = block.feedforward_intermediate_dense, block.feedforward_output_dense
    value = ops.convert_to_numpy
    # (hidden, 3, heads, head_dim): the query, key and value thirds, each head-major.
    qkv_kernel = value(qkv.kernel).reshape(hidden, 3, heads, head_dim)[:, :, kept_heads]
    qkv_bias = value(qkv.bias).reshape(3, heads, head_dim)[:, kept_heads]
    # (heads, head_dim, hidden)
    output_kernel = value(attention_output.kernel).reshape(heads, head_dim, hidden)[kept_heads]
    return {
        qkv.kernel.path: qkv_kernel.reshape(hidden, -1),
        qkv.bias.path: qkv_bias.reshape(-1),
        attention_output.kernel.path: output_kernel.reshape(-1, hidden),
        intermediate.kernel.path: value(intermediate.kernel)[:, kept_units],
        intermediate.bias.path: value(intermediate.bias)[kept_units],
        output.kernel.path: value(output.kernel)[kept_units],
    }
