"""Classification metrics that take integer labels."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfllm")
class SparseF1Score(keras.metrics.F1Score):
    """`keras.metrics.F1Score` for integer labels and logits or probabilities.

    Args:
        num_classes: int.
        average: `"macro"` (default), `"micro"`, `"weighted"` or None.
        name: the metric's name.

    Example:

    >>> metric = SparseF1Score(num_classes=2)
    >>> metric.update_state([0, 1, 1], [[2.0, 1.0], [0.0, 3.0], [4.0, 1.0]])
    """

    def __init__(self, num_classes, average="macro", name="f1", **kwargs):
        super().__init__(average=average, name=name, **kwargs)
        self.num_classes = num_classes

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.one_hot(ops.reshape(ops.cast(y_true, "int32"), (-1,)), self.num_classes)
        predicted = ops.argmax(y_pred, axis=-1)
        y_pred = ops.one_hot(predicted, self.num_classes)
        super().update_state(y_true, y_pred, sample_weight)

    def get_config(self):
        config = super().get_config()
        config["num_classes"] = self.num_classes
        return config
