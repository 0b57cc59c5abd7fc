"""The callbacks every training script wants: resumable backups, TensorBoard, a metrics log."""

import hashlib
import json
import logging
import os
import shutil
import time

import h5py
import keras
import numpy as np

_LOG = logging.getLogger(__name__)


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` at epoch ends that survives a kill at any point of a write.

    The files are Keras's: `latest.weights.h5` and `training_metadata.json` (the epoch),
    and the previous backup beside them as `latest.weights.h5.bkp` and
    `training_metadata.json.bkp` (`double_checkpoint=True`). They are written differently:

    - Each backup is written whole under temporary names (`incoming.weights.h5`,
      `incoming_metadata.json`), flushed to disk (`fsync`), and only then renamed over the
      latest. The metadata records the weights file's size and SHA-256, so a weights file
      and a metadata file that belong to different backups are told apart.
    - The latest backup becomes the previous one (a hard link or a copy, renamed into place)
      before the new one replaces it, and only when the latest is complete. At every moment
      of a write at least one complete backup is on disk.

    On restore, a torn latest backup (metadata empty or cut short, weights file missing, cut
    short or from another save) falls back to the previous one, with a warning saying which.
    When neither is readable, the backup directory is renamed aside
    (`backup.unreadable-<time>`), never deleted, and training starts from the beginning. A
    backup of another model (different variables or shapes: another run in the same output
    directory, or a changed config) raises a `ValueError` naming the first difference and
    leaves the backup untouched. As with `BackupAndRestore`, the directory is deleted when
    `fit` finishes; it is renamed away first, so a kill then leaves all of it or none.

    Backups written by Keras's own `BackupAndRestore` (no size or checksum) are read too;
    for them a torn weights file is caught only when HDF5 cannot read its structure.

    Args:
        backup_dir: the directory of the backup, used by this run only.

    Example:

    ```python
    model.fit(dataset.repeat(), steps_per_epoch=100, epochs=10,
              callbacks=[ResumableBackup("runs/gpt/backup")])
    ```
    """

    _INCOMING_WEIGHTS = "incoming.weights.h5"  # save_weights wants the `.weights.h5` ending
    _INCOMING_METADATA = "incoming_metadata.json"
    _RESTORING_WEIGHTS = "restoring.weights.h5"

    def __init__(self, backup_dir):
        super().__init__(backup_dir, save_freq="epoch", double_checkpoint=True)
        # Whether `latest.*` is known to be a complete backup (restored from, or written by
        # this run): only then may it replace the previous one.
        self._latest_is_complete = False

    # Restore.

    def on_train_begin(self, logs=None):
        if not self.model.built:
            raise ValueError(
                "To use ResumableBackup (BackupAndRestore), the model must be built before "
                f"`fit()`. Model {self.model.name} is unbuilt: call it on a batch of data first."
            )
        self._latest_is_complete = False
        # Keras never clears the epoch a restore sets: a second `fit` of the same model would
        # otherwise start where an earlier one resumed.
        self.model._initial_epoch = None
        if not os.path.isdir(self.backup_dir) or not os.listdir(self.backup_dir):
            return
        candidates = [
            ("latest", self._weights_path, self._training_metadata_path),
            ("previous", self._prev_weights_path, self._prev_training_metadata_path),
        ]
        problems = []
        for which, weights_path, metadata_path in candidates:
            metadata, stored_shapes, problem = _read_backup(weights_path, metadata_path)
            if problem:
                problems.append(problem)
                continue
            optimizer = self.model.optimizer
            if optimizer is not None and not optimizer.built:
                optimizer.build(self.model.trainable_variables)
            self._check_backup_matches_model(stored_shapes)
            self._load_weights(weights_path)
            self.model._initial_epoch = metadata["epoch"]
            self._latest_is_complete = which == "latest"
            if problems:
                _LOG.warning(
                    "The latest backup in %s is torn (%s): resuming from the previous backup (%s), "
                    "at epoch %d.", self.backup_dir, problems[0], os.path.basename(metadata_path), metadata["epoch"]
                )
            return
        aside = _unused_path(f"{os.path.normpath(self.backup_dir)}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
        os.rename(self.backup_dir, aside)
        _LOG.warning(
            "No readable backup in %s (the latest: %s; the previous: %s). Its files are kept in %s; "
            "training starts from the beginning.", self.backup_dir, problems[0], problems[1], aside
        )

    def _load_weights(self, weights_path):
        if weights_path.endswith(".weights.h5"):
            self.model.load_weights(weights_path)
            return
        # Keras loads only names ending in `.weights.h5`: the previous backup is read through
        # a link of that name, and left as it is.
        restoring = os.path.join(self.backup_dir, self._RESTORING_WEIGHTS)
        _link_or_copy(weights_path, restoring)
        try:
            self.model.load_weights(restoring)
        finally:
            os.remove(restoring)

    def _check_backup_matches_model(self, stored_shapes):
        expected_shapes = _variable_shapes(self.model)
        if stored_shapes == expected_shapes:
            return
        for name, shape in expected_shapes.items():
            if name not in stored_shapes:
                difference = f"this model has {name} {shape}, which the backup lacks"
                break
            if stored_shapes[name] != shape:
                difference = f"{name} is {stored_shapes[name]} in the backup and {shape} in this model"
                break
        else:
            name = next(name for name in stored_shapes if name not in expected_shapes)
            difference = f"the backup has {name} {stored_shapes[name]}, which this model lacks"
        raise ValueError(
            f"The backup in {self.backup_dir} is not of this model: {difference} "
            f"({len(stored_shapes)} variables in the backup, {len(expected_shapes)} in the model). "
            "It belongs to another run in the same output directory, or the model, its config or "
            "its optimizer changed. The backup is left untouched: use another --output-dir, or "
            f"delete {self.backup_dir} to train this model from the beginning."
        )

    # Save.

    def _save_model(self):
        """Writes the backup under temporary names, then renames it over the latest."""
        if not os.path.isdir(self.backup_dir):
            os.makedirs(self.backup_dir)
            _sync_directory(os.path.dirname(os.path.abspath(self.backup_dir)))
        incoming_weights = os.path.join(self.backup_dir, self._INCOMING_WEIGHTS)
        incoming_metadata = os.path.join(self.backup_dir, self._INCOMING_METADATA)
        self.model.save_weights(incoming_weights, overwrite=True)
        digest, size = _digest(incoming_weights, sync=True)
        metadata = {
            "epoch": self._current_epoch,
            "batch": self._last_batch_seen,
            "weights_bytes": size,
            "weights_sha256": digest,
        }
        _write_synced(incoming_metadata, json.dumps(metadata))
        if self._latest_is_complete:
            _link_or_copy(self._weights_path, self._prev_weights_path)
            _link_or_copy(self._training_metadata_path, self._prev_training_metadata_path)
        # Between these two renames the latest pair is torn (new weights, old metadata: the
        # checksum tells) and the previous one is complete.
        os.replace(incoming_weights, self._weights_path)
        os.replace(incoming_metadata, self._training_metadata_path)
        _sync_directory(self.backup_dir)
        self._latest_is_complete = True

    def on_train_end(self, logs=None):
        # One rename takes the whole backup away, so a kill while deleting leaves no part of it.
        if os.path.isdir(self.backup_dir):
            finished = f"{os.path.normpath(self.backup_dir)}.finished"
            shutil.rmtree(finished, ignore_errors=True)  # a deletion a kill interrupted
            os.rename(self.backup_dir, finished)
            shutil.rmtree(finished)


def _read_backup(weights_path, metadata_path):
    """Returns `(metadata, variable shapes, None)`, or `(None, None, what is wrong)`."""
    metadata_name, weights_name = os.path.basename(metadata_path), os.path.basename(weights_path)
    try:
        with open(metadata_path, "rb") as file:
            metadata = json.loads(file.read())
    except FileNotFoundError:
        return None, None, f"{metadata_name} is missing"
    except (OSError, ValueError) as error:  # ValueError: JSON (or UTF-8) cut short
        return None, None, f"{metadata_name} is unreadable ({type(error).__name__}: {error})"
    if not isinstance(metadata, dict) or not isinstance(metadata.get("epoch"), int) or metadata["epoch"] < 0:
        return None, None, f"{metadata_name} holds no epoch number: {metadata!r}"
    try:
        size = os.path.getsize(weights_path)
    except FileNotFoundError:
        return None, None, f"{weights_name} is missing"
    if "weights_bytes" in metadata:
        if size != metadata["weights_bytes"]:
            return None, None, (
                f"{weights_name} has {size} bytes where {metadata_name} records {metadata['weights_bytes']}"
            )
        if _digest(weights_path)[0] != metadata.get("weights_sha256"):
            return None, None, f"{weights_name} is not the file {metadata_name} records (SHA-256 differs)"
    try:
        with h5py.File(weights_path, "r") as file:
            shapes = _stored_shapes(file)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        return None, None, f"{weights_name} is not a readable HDF5 file ({type(error).__name__}: {error})"
    return metadata, shapes, None


def _stored_shapes(h5_file):
    shapes = {}

    def visit(name, item):
        if isinstance(item, h5py.Dataset):
            shapes[name] = tuple(item.shape)

    h5_file.visititems(visit)
    return shapes


def _variable_shapes(model):
    """`{path in a .weights.h5 file: shape}` of what `model.save_weights` would write.

    Keras's own walk over the model (layers, optimizer), with a store that keeps the shapes
    and writes nothing. The walk is private to Keras, which setup.cfg pins to 3.15.
    """
    from keras.src.saving import saving_lib

    class ShapeRecorder(saving_lib.H5IOStore):
        def __init__(self):
            self.shapes, self.path = {}, ""

        def __bool__(self):
            return True

        def make(self, path, metadata=None):
            self.path = path
            return self

        def __setitem__(self, key, value):
            name = f"{self.path}/vars/{key}" if self.path else f"vars/{key}"
            self.shapes[name] = tuple(int(dim) for dim in np.shape(value))

    recorder = ShapeRecorder()
    saving_lib._save_state(model, weights_store=recorder, assets_store=None, inner_path="", visited_saveables=set())
    return recorder.shapes


# File operations. A kill between any two of them leaves either the old or the new file.


def _digest(path, sync=False):
    """The SHA-256 and size of the file at `path`; `sync`: flush it to disk first."""
    sha256 = hashlib.sha256()
    with open(path, "rb") as file:
        if sync:
            os.fsync(file.fileno())
        for chunk in iter(lambda: file.read(1 << 20), b""):
            sha256.update(chunk)
        return sha256.hexdigest(), file.tell()


def _write_synced(path, text):
    with open(path, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())


def _link_or_copy(source, destination):
    """Puts a copy of `source` at `destination` by one rename: a kill leaves the old or the new."""
    partial = f"{destination}.partial"
    if os.path.lexists(partial):
        os.remove(partial)
    try:
        os.link(source, partial)  # the source is never written in place again: sharing is safe
    except OSError:
        shutil.copyfile(source, partial)
        with open(partial, "rb") as file:
            os.fsync(file.fileno())
    os.replace(partial, destination)


def _sync_directory(path):
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _unused_path(path):
    candidate, number = path, 1
    while os.path.lexists(candidate):
        number += 1
        candidate = f"{path}-{number}"
    return candidate


def training_callbacks(output_dir, tensorboard=True):
    """Returns `[ResumableBackup, CSVLogger, TensorBoard]` writing under `output_dir`.

    `ResumableBackup` (a `BackupAndRestore`) saves the model, the optimizer and the epoch
    number at the end of every epoch to `output_dir/backup`; a crashed run started again with the same
    `output_dir` resumes at the epoch after the last complete backup, exactly (weights,
    optimizer state and step count as they were), losing at most one epoch of work.
    Keras resumes only at epoch boundaries — a backup taken mid-epoch would replay the
    epoch's first batches — so for frequent backups use short epochs:
    `model.fit(dataset.repeat(), steps_per_epoch=N, epochs=total_steps // N)`.
    The backup is deleted when `fit` finishes. A backup of another model in `output_dir`
    raises a `ValueError` and is kept.
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
    """Writes `metrics` (a dict of numbers, strings and None) to `output_dir/metrics.json`."""
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "metrics.json")
    with open(path, "w") as file:
        json.dump({key: _plain(value) for key, value in metrics.items()}, file, indent=2, sort_keys=True)
    return path


def _plain(value):
    if value is None:
        return None  # JSON null, read back as None
    try:
        return float(value) if not isinstance(value, (str, int, bool, list, dict)) else value
    except (TypeError, ValueError):
        return str(value)
