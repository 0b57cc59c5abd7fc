"""The callbacks every training script wants: resumable backups, TensorBoard, a metrics log."""

import json
import logging
import os
import shutil
import time

import keras


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` at epoch ends that also survives a kill in the middle of a write.

    It keeps the previous backup beside the latest (`double_checkpoint`), so a torn latest
    backup falls back to the previous one. When the only backup is unreadable (the run was
    killed while writing its first), it is discarded with a warning and training starts
    from the beginning — the work lost is still only what came after the last complete
    backup, of which there was none.
    """

    def __init__(self, backup_dir):
        super().__init__(backup_dir, save_freq="epoch", double_checkpoint=True)

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError) as error:
            logging.getLogger(__name__).warning(
                "The backup in %s is unreadable (%s): starting training from the beginning.", self.backup_dir, error
            )
            shutil.rmtree(self.backup_dir, ignore_errors=True)


def training_callbacks(output_dir, tensorboard=True):
    """Returns `[BackupAndRestore, CSVLogger, TensorBoard]` writing under `output_dir`.

    `ResumableBackup` (a `BackupAndRestore`) saves the model, the optimizer and the epoch
    number at the end of every epoch to `output_dir/backup`; a crashed run started again with the same
    `output_dir` resumes at the epoch after the last backup, exactly (weights,
    optimizer state and step count as they were), losing at most one epoch of work.
    Keras resumes only at epoch boundaries — a backup taken mid-epoch would replay the
    epoch's first batches — so for frequent backups use short epochs:
    `model.fit(dataset.repeat(), steps_per_epoch=N, epochs=total_steps // N)`.
    The backup is deleted when `fit` finishes.
    """
    os.makedirs(output_dir, exist_ok=True)
    callbacks = [
        ResumableBackup(os.path.join(output_dir, "backup")),
        keras.callbacks.CSVLogger(os.path.join(output_dir, "history.csv"), append=True),
    ]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(output_dir, "logs"), update_freq=50))
    return callbacks


class TimeLimit(keras.callbacks.Callback):
    """Stops `fit` after the batch that ends past `minutes` of training."""

    def __init__(self, minutes):
        super().__init__()
        if minutes <= 0:
            raise ValueError(f"`minutes` must be positive. Received: minutes={minutes}")
        self.seconds = minutes * 60

    def on_train_begin(self, logs=None):
        self.start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        if time.time() - self.start > self.seconds:
            self.model.stop_training = True


def write_metrics(output_dir, metrics):
    """Writes `metrics` (a dict of numbers and strings) to `output_dir/metrics.json`."""
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "metrics.json")
    with open(path, "w") as file:
        json.dump({key: _plain(value) for key, value in metrics.items()}, file, indent=2, sort_keys=True)
    return path


def _plain(value):
    try:
        return float(value) if not isinstance(value, (str, int, bool, list, dict)) else value
    except (TypeError, ValueError):
        return str(value)
