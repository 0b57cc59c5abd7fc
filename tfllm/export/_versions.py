"""TF Serving's directory layout: atomic version directories, `models.config`, warm-up records.

TF Serving polls a model's base path and takes every child directory whose name is an
integer for a version, complete or not (tensorflow/serving#1086). So a version is written in
full under a hidden sibling name (`.tmp-<version>-<pid>`) on the same file system and then
renamed: the numbered directory appears complete or not at all.
"""

import os
import re
import shutil

import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving replays at most this many.
_TEMPORARY = re.compile(r"^\.tmp-(\d+)-(\d+)$")


def existing_versions(base_path):
    """The version numbers under `base_path` (its integer-named child directories), sorted."""
    if not os.path.isdir(base_path):
        return []
    return sorted(
        int(name) for name in os.listdir(base_path) if name.isdigit() and os.path.isdir(os.path.join(base_path, name))
    )


def save_version(module, base_path, signatures, version=None, warmup_requests=(), model_name=None, check=None):
    """Saves `module` as `base_path/<version>/`, atomically, with its warm-up records.

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
        FileExistsError if that version exists (versions are immutable once served).
    """
    base_path = os.path.abspath(base_path)
    os.makedirs(base_path, exist_ok=True)
    _remove_abandoned_temporaries(base_path)
    if version is None:
        version = (existing_versions(base_path) or [0])[-1] + 1
    if not isinstance(version, int) or isinstance(version, bool) or version <= 0:
        raise ValueError(f"`version` must be a positive int. Received: version={version!r}")
    final_path = os.path.join(base_path, str(version))
    if os.path.exists(final_path):
        raise FileExistsError(
            f"{final_path} already exists: TF Serving versions are immutable. Export to a new version "
            "(version=None picks the next one) or delete it first."
        )
    temporary = os.path.join(base_path, f".tmp-{version}-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        tf.saved_model.save(module, temporary, signatures=signatures)
        if warmup_requests:
            write_warmup_requests(
                os.path.join(temporary, WARMUP_FILE), model_name or os.path.basename(base_path), warmup_requests
            )
        if check is not None:
            check(temporary)
        _sync_tree(temporary)
        os.rename(temporary, final_path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return final_path


def _remove_abandoned_temporaries(base_path):
    """Deletes `.tmp-<version>-<pid>` directories left by exports whose process is gone."""
    for name in os.listdir(base_path):
        match = _TEMPORARY.match(name)
        if match and not _process_alive(int(match.group(2))):
            shutil.rmtree(os.path.join(base_path, name), ignore_errors=True)


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
