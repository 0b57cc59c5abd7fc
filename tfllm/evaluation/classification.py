"""Accuracy, per-class and macro precision / recall / F1, and the confusion matrix."""

import numpy as np


def classification_metrics(labels, predictions, label_names):
    """Scores class predictions against the true classes.

    Args:
        labels: the true class ids (ints in `[0, len(label_names))`).
        predictions: the predicted class ids, as many.
        label_names: the class names, index = class id.

    Returns:
        A dict: `accuracy`, `macro_precision`, `macro_recall`, `macro_f1` (unweighted means
        over the classes; a class never predicted has precision 0, one never present recall
        0), `per_class` (`{name: {"precision", "recall", "f1", "support"}}`), `labels`,
        `confusion_matrix` (rows: true class, columns: predicted class), `examples`.

    Example:

    >>> classification_metrics([0, 1, 1], [0, 1, 0], ["negative", "positive"])["accuracy"]
    0.666...
    """
    labels = np.asarray(labels, "int64").reshape(-1)
    predictions = np.asarray(predictions, "int64").reshape(-1)
    names = [str(name) for name in label_names]
    classes = len(names)
    if labels.shape != predictions.shape:
        raise ValueError(f"{labels.size} labels but {predictions.size} predictions: they must pair up.")
    if labels.size == 0:
        raise ValueError("No examples to score.")
    for what, values in (("labels", labels), ("predictions", predictions)):
        if values.min() < 0 or values.max() >= classes:
            raise ValueError(f"`{what}` must be class ids in [0, {classes}). Received values from {values.min()} to {values.max()}")
    confusion = np.zeros((classes, classes), "int64")
    np.add.at(confusion, (labels, predictions), 1)
    true_positives = np.diag(confusion).astype("float64")
    predicted = confusion.sum(axis=0)
    present = confusion.sum(axis=1)
    precision = np.divide(true_positives, predicted, out=np.zeros(classes), where=predicted > 0)
    recall = np.divide(true_positives, present, out=np.zeros(classes), where=present > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(classes), where=denominator > 0)
    return dict(
        accuracy=float(true_positives.sum() / labels.size),
        macro_precision=float(precision.mean()),
        macro_recall=float(recall.mean()),
        macro_f1=float(f1.mean()),
        per_class={
            name: dict(precision=float(p), recall=float(r), f1=float(f), support=int(s))
            for name, p, r, f, s in zip(names, precision, recall, f1, present)
        },
        labels=names,
        confusion_matrix=confusion.tolist(),
        examples=int(labels.size),
    )
