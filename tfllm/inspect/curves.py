"""Training curves from a run directory: loss and metrics, training and validation, as PNG."""

import collections
import csv
import glob
import math
import os


def read_history(run_dir):
    """`{metric: [(epoch, value)]}` from a run's `history.csv` (`tfllm.training.training_callbacks`'
    CSV log), else from its TensorBoard `logs/` (epoch scalars of `train/` and `validation/`).

    Validation metrics are named `val_<metric>`. A resumed run's CSV holds an epoch once per
    run that reached it; the last value wins.
    """
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"{run_dir!r} is not a directory.")
    path = os.path.join(run_dir, "history.csv")
    if os.path.isfile(path):
        return _read_csv(path)
    events = sorted(glob.glob(os.path.join(run_dir, "logs", "*", "events.out.tfevents.*")))
    if events:
        return _read_tensorboard(events)
    raise FileNotFoundError(
        f"{run_dir!r} has no training logs: neither history.csv nor TensorBoard event files under logs/ "
        "(the training scripts write both with tfllm.training.training_callbacks)."
    )


def _read_csv(path):
    history = collections.defaultdict(dict)
    with open(path, encoding="utf-8", newline="") as file:
        for line, row in enumerate(csv.DictReader(file), start=2):
            if row.get("epoch") in (None, "") or not row["epoch"].isdigit():
                continue  # a header repeated by a resumed run
            epoch = int(row["epoch"]) + 1
            for name, value in row.items():
                if name == "epoch" or value in (None, "", "NA"):  # CSVLogger writes NA for a missing value
                    continue
                try:
                    history[name][epoch] = float(value)
                except ValueError:
                    raise ValueError(f"{path}, line {line}: {name}={value!r} is not a number.") from None
    if not history:
        raise ValueError(f"{path} holds no epochs yet.")
    return {name: sorted(points.items()) for name, points in history.items()}


def _read_tensorboard(paths):
    import tensorflow as tf

    history = collections.defaultdict(dict)
    for path in paths:
        prefix = "val_" if os.path.basename(os.path.dirname(path)) == "validation" else ""
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if not value.tag.startswith("epoch_"):
                    continue
                number = value.simple_value if value.HasField("simple_value") else tf.make_ndarray(value.tensor).item()
                history[prefix + value.tag[len("epoch_") :]][event.step + 1] = float(number)
    if not history:
        raise ValueError(f"The TensorBoard logs {paths} hold no epoch scalars yet.")
    return {name: sorted(points.items()) for name, points in history.items()}


def plot_training(run_dir, output=None):
    """Draws each metric's curve (training and validation together) from a run's logs.

    Args:
        run_dir: a training script's `--output-dir`.
        output: the folder for the PNGs (default: `run_dir`).

    Returns:
        The PNG paths written: `curves.png` (every metric, one panel each) and
        `<metric>.png` per metric.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = read_history(run_dir)
    output = output or run_dir
    os.makedirs(output, exist_ok=True)
    metrics = sorted({name[4:] if name.startswith("val_") else name for name in history} - {"learning_rate"})
    metrics += ["learning_rate"] if "learning_rate" in history else []

    def draw(axis, metric):
        for name, style in ((metric, "-o"), ("val_" + metric, "--s")):
            if name in history:
                epochs, values = zip(*history[name])
                axis.plot(epochs, values, style, markersize=3, label="validation" if name.startswith("val_") else "training")
        axis.set_title(metric)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)

    paths = []
    columns = min(3, len(metrics))
    rows = math.ceil(len(metrics) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows), squeeze=False)
    for axis in axes.flat[len(metrics):]:
        axis.axis("off")
    for axis, metric in zip(axes.flat, metrics):
        draw(axis, metric)
    figure.suptitle(os.path.basename(os.path.abspath(run_dir)))
    figure.tight_layout()
    paths.append(os.path.join(output, "curves.png"))
    figure.savefig(paths[-1], dpi=100)
    plt.close(figure)
    for metric in metrics:
        figure, axis = plt.subplots(figsize=(6, 4))
        draw(axis, metric)
        figure.tight_layout()
        paths.append(os.path.join(output, f"{metric}.png"))
        figure.savefig(paths[-1], dpi=100)
        plt.close(figure)
    return paths
