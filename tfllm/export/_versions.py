"""TF Serving's directory layout: atomic version directories and warm-up records.

TF Serving polls a model's base path and takes every child directory whose name is an
integer for a version, complete or not (tensorflow/serving#1086). So a version is written in
full under a hidden sibling name (`.tmp-<version>-<host>-<pid>-<n>`) on the same file system
and then renamed: the numbered directory appears complete or not at all. Several exporters,
on one machine or several sharing the volume, may write into one base path at once.
"""

import errno
import os
import shutil

import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from tfllm.export import _shared_files

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving replays at most this many.
_TEMPORARY_PREFIX = r"\.tmp-(?P<version>\d+)"


def existing_versions(base_path):
    """The version numbers under `base_path` (its integer-named child directories), sorted."""
    if not os.path.isdir(base_path):
        return []
    return sorted(
        int(name) for name in os.listdir(base_path) if name.isdigit() and os.path.isdir(os.path.join(base_path, name))
    )


def save_version(module, base_path, signatures, version=None, warmup_requests=(), model_name=None, check=None):
    """Saves `module` as `base_path/<version>/`, atomically, with its warm-up records.

    The version is written under a hidden temporary name and renamed when complete. With
    `version=None`, a version number that another export takes meanwhile (one writing into
    the same base path, from this machine or another) is skipped: this export takes the next
    free one. An export that fails removes its temporary, and `base_path` too if this export
    created it and it is still empty; nothing else. Temporaries that killed exports left are
    removed (see `_remove_abandoned_temporaries`).

    Args:
        module: the `tf.Module` to save.
        base_path: the model's base path (`saved_models/<name>`).
        signatures: `{name: concrete or input-signed tf.function}`.
        version: int > 0, or None for one more than the highest existing version (1 first).
        warmup_requests: `(signature_name, {input: array})` pairs written to
            `assets.extra/tf_serving_warmup_requests`.
        model_name: the model name the warm-up requests carry (default: the base path's name).
        check: optional callable run on the complete temporary directory before it is
            renamed; if it raises, no version appears.

    Returns:
        The version directory's path.

    Raises:
        FileExistsError if `version` exists, or another export writes it first (versions are
        immutable once served).
    """
    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version <= 0):
        raise ValueError(f"`version` must be a positive int or None. Received: version={version!r}")
    base_path = os.path.abspath(base_path)
    created = not os.path.isdir(base_path)
    os.makedirs(base_path, exist_ok=True)
    temporary = None
    try:
        _remove_abandoned_temporaries(base_path)
        if version is not None and os.path.lexists(os.path.join(base_path, str(version))):
            raise FileExistsError(
                f"{os.path.join(base_path, str(version))} already exists: TF Serving versions are immutable. "
                "Export to a new version (version=None picks the next one) or delete it first."
            )
        first_choice = version or _next_version(base_path, 0)
        temporary = os.path.join(base_path, _shared_files.temporary_name(f".tmp-{first_choice}"))
        tf.saved_model.save(module, temporary, signatures=signatures)
        if warmup_requests:
            write_warmup_requests(
                os.path.join(temporary, WARMUP_FILE), model_name or os.path.basename(base_path), warmup_requests
            )
        if check is not None:
            check(temporary)
        _sync_tree(temporary)
        final_path = _rename_to_version(temporary, base_path, first_choice, explicit=version is not None)
        _shared_files.sync_directory(base_path)
        return final_path
    except BaseException:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
        if created:
            _remove_if_empty(base_path)
        raise


def _next_version(base_path, at_least):
    """One more than the highest integer name under `base_path` (any kind of entry) and than
    `at_least`."""
    names = [int(name) for name in os.listdir(base_path) if name.isdigit()]
    return max([at_least, *names]) + 1


def _rename_to_version(temporary, base_path, version, explicit):
    """Renames `temporary` to `base_path/<version>`, or with `explicit=False` to the next free
    version when another export took that one first. Returns the version's path."""
    while True:
        final_path = os.path.join(base_path, str(version))
        try:
            # A directory renames onto a missing or empty name only, in one step.
            os.rename(temporary, final_path)
            return final_path
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR) or not os.path.lexists(final_path):
                raise
        if explicit:
            raise FileExistsError(
                f"{final_path} was written by another export while this one was being written: TF Serving "
                "versions are immutable. Export to a new version (version=None picks the next free one)."
            )
        version = _next_version(base_path, version)


def _remove_if_empty(path):
    try:
        os.rmdir(path)  # Removes an empty directory only.
    except OSError:
        pass


def _remove_abandoned_temporaries(base_path):
    """Deletes the temporaries of exports whose writer is gone (see `_shared_files.is_abandoned`):
    `.tmp-<version>-<host>-<pid>-<n>`, and `.tmp-<version>-<pid>` from earlier tfllm versions."""
    for name in os.listdir(base_path):
        path = os.path.join(base_path, name)
        match = _shared_files.match_temporary(name, _TEMPORARY_PREFIX)
        if match and _shared_files.is_abandoned(path, match):
            shutil.rmtree(path, ignore_errors=True)


def _sync_tree(path):
    """Flushes every file under `path` to disk, so the renamed version survives a crash."""
    for directory, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(directory, name), "rb") as file:
                os.fsync(file.fileno())


def write_warmup_requests(path, model_name, requests):
    """Writes TF Serving's warm-up file: a TFRecord of `PredictionLog` protos.

    Args:
        path: the file (`<version>/assets.extra/tf_serving_warmup_requests`).
        model_name: the served model's name.
        requests: `(signature_name, {input_name: array})` pairs; every input of the
            signature, batch first.
    """
    requests = list(requests)
    if len(requests) > MAX_WARMUP_RECORDS:
        raise ValueError(f"TF Serving replays at most {MAX_WARMUP_RECORDS} warm-up records. Received {len(requests)}.")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature_name, inputs in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name)
            )
            for input_name, value in inputs.items():
                request.inputs[input_name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def read_warmup_requests(path):
    """The `PredictionLog` protos of a warm-up file (to check or replay one)."""
    logs = []
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    return logs
