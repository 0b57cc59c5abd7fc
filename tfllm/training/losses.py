"""Cross-entropy of integer labels under logits, with its gradient in one element-wise pass."""

import keras
from keras import ops


def sparse_cross_entropy(labels, logits):
    """Per-position cross-entropy of integer `labels` under `logits`, `logsumexp(logits) - logits[label]`.

    The same values as `keras.losses.sparse_categorical_crossentropy(labels, logits,
    from_logits=True)`, computed in float32, with the gradient written out: `softmax(logits) -
    one_hot(labels)`, from the exponentials the loss computed, in one element-wise pass. Keras's
    path costs more on a language model's `[batch, sequence, vocabulary]` logits: it takes the
    loss value as a sum over a one-hot product as large as the logits (TensorFlow's kernel does
    so under XLA; the JAX backend builds the one-hot and the log-softmax), a second full-size
    pass and reduction.

    Args:
        labels: int tensor, the logits' shape without the last axis (a trailing axis of 1 is
            allowed).
        logits: float tensor `[..., num_classes]`.

    Returns:
        Float32 losses, the shape of `labels`. A label outside `[0, num_classes)` gives NaN, so
        it cannot pass unnoticed; leave positions out with a `sample_weight` of 0 instead.
    """
    labels, logits = ops.convert_to_tensor(labels), ops.convert_to_tensor(logits)
    if len(labels.shape) == len(logits.shape) and labels.shape[-1] == 1:
        labels = ops.squeeze(labels, axis=-1)
    if len(labels.shape) != len(logits.shape) - 1:
        raise ValueError(
            "`labels` must have the shape of `logits` without its last axis. "
            f"Received: labels.shape={labels.shape}, logits.shape={logits.shape}"
        )
    num_classes = ops.shape(logits)[-1]
    labels = ops.cast(labels, "int32")
    valid = ops.logical_and(labels >= 0, labels < num_classes)
    safe_labels = ops.where(valid, labels, 0)

    @ops.custom_gradient
    def cross_entropy(logits):
        x = ops.cast(logits, "float32")
        row_max = ops.max(x, axis=-1, keepdims=True)
        row_max = ops.where(ops.isfinite(row_max), row_max, 0.0)
        # Kept for the gradient: with `exp` computed once, the step reads the logits fewer
        # times, in TensorFlow's plain graph and under XLA alike.
        exponentials = ops.exp(x - row_max)
        normalizer = ops.sum(exponentials, axis=-1)
        label_logit = ops.squeeze(ops.take_along_axis(x, safe_labels[..., None], axis=-1), axis=-1)
        losses = ops.log(normalizer) + ops.squeeze(row_max, axis=-1) - label_logit
        losses = ops.where(valid, losses, float("nan"))

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            gradient = exponentials * (upstream / normalizer)[..., None] - (
                ops.one_hot(safe_labels, num_classes) * upstream[..., None]
            )
            return ops.cast(gradient, logits.dtype)

        return losses, grad

    return cross_entropy(logits)


@keras.saving.register_keras_serializable(package="tfllm")
class SparseCrossEntropy(keras.losses.Loss):
    """Cross-entropy of integer labels under logits: `sparse_cross_entropy` as a Keras loss.

    A drop-in for `keras.losses.SparseCategoricalCrossentropy(from_logits=True)`: the same
    values, reductions and sample weights, and a cheaper gradient on large
    vocabularies (`sparse_cross_entropy`). The losses are float32 whatever the precision policy.

    Args:
        reduction: as for any Keras loss; `"sum_over_batch_size"` by default.
        name: the loss's name.

    Example:

    >>> model.compile(optimizer="adamw", loss=tfllm.training.SparseCrossEntropy())
    """

    def __init__(self, reduction="sum_over_batch_size", name="sparse_cross_entropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return sparse_cross_entropy(y_true, y_pred)
