"""Files that several exporters, on one machine or on several, write beside a running TF Serving.

- `update_models_config`: TF Serving's `--model_config_file` (`models.config`), read, changed
  and replaced under a lock, so concurrent exporters lose no entry.
- Temporary names keyed by host and process (`<prefix>-<host>-<pid>-<n>`), and `is_abandoned`,
  which tells a temporary whose writer is gone from one that is still being written, so a
  clean-up never removes another machine's export in progress.

Imports no TensorFlow: only the standard library and the protobuf messages of
`tensorflow-serving-api`.
"""

import contextlib
import fcntl
import itertools
import os
import re
import socket
import time

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

# A temporary written on another machine (or under the names without a host that earlier
# tfllm versions wrote) is taken for abandoned only when it is older than this: that
# machine's processes cannot be asked whether its writer is still running.
ABANDONED_AGE_SECONDS = 24 * 60 * 60
# How long `update_models_config` waits for another writer's lock before it gives up.
LOCK_TIMEOUT_SECONDS = 120
_LOCK_POLL_SECONDS = 0.01
_SERIALS = itertools.count()


def host_name():
    """This machine's name as it appears in temporary names (letters, digits, `.`, `_`, `-`)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "localhost"


def temporary_name(prefix):
    """`<prefix>-<host>-<pid>-<n>`: a name no other writer uses, on this machine or another, nor
    another call in this process (`n` counts them)."""
    return f"{prefix}-{host_name()}-{os.getpid()}-{next(_SERIALS)}"


def match_temporary(name, prefix_pattern):
    """Matches `name` as a temporary name that `temporary_name` made from a prefix matching the
    regex `prefix_pattern`, or as the `<prefix>-<pid>` form earlier tfllm versions wrote (its
    host unknown). Returns the match (with any groups of `prefix_pattern`, `host` and `pid`)
    or None."""
    return re.match(rf"^{prefix_pattern}-(?P<host>.+)-(?P<pid>\d+)-\d+$", name) or re.match(
        rf"^{prefix_pattern}-(?P<pid>\d+)$", name
    )


def is_abandoned(path, match):
    """Whether the temporary at `path` (`match`: its name's `match_temporary`) is abandoned.

    One written on this machine is abandoned when its process is gone. One written on another
    machine, or under a name without a host, is abandoned only when it is older than
    `ABANDONED_AGE_SECONDS`: no process of another machine can be asked about.
    """
    if match.groupdict().get("host") == host_name():
        return not _process_alive(int(match.group("pid")))
    try:
        age = time.time() - os.lstat(path).st_mtime
    except FileNotFoundError:
        return False
    return age > ABANDONED_AGE_SECONDS


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sync_directory(path):
    """Flushes a directory's entries (a rename into it) to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def exclusive_lock(path, timeout=LOCK_TIMEOUT_SECONDS):
    """Holds an exclusive `fcntl.flock` on the file `path` (created if missing, never removed).

    The lock is advisory: it excludes only processes that take the same lock. Between
    processes of one machine it always works, and the kernel releases it when its holder
    dies, even by SIGKILL. Across machines it works where the shared file system carries
    `flock` locks (NFSv4 does; an NFSv3 mount needs its lock manager, and some mounts
    (`nolock`, `local_lock=flock`) keep locks local to each machine).

    Raises:
        TimeoutError naming the lock file if another holder keeps it for `timeout` seconds.
    """
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"Another process has held the lock {path} for over {timeout} s. If no "
                        "export is running, a stopped process may hold it."
                    ) from None
                time.sleep(_LOCK_POLL_SECONDS)
        yield
    finally:
        os.close(descriptor)  # Closing the last descriptor releases the lock.


def update_models_config(config_path, model_name, base_path, num_versions=1):
    """Adds or replaces `model_name` in a TF Serving `--model_config_file`.

    The file is a `ModelServerConfig` text proto; other models in it are kept. Each update
    reads, changes and replaces the file while holding an exclusive lock on
    `<config_path>.lock` beside it, so processes updating one file at once lose no entry;
    the new file is written beside, flushed to disk and renamed over the old one, so a reader
    (the server) or a crash sees the old file or the new one, whole. The lock is advisory and
    local (`fcntl.flock`): on a shared file system it excludes writers of other machines only
    where that file system carries `flock` locks (see `exclusive_lock`). `<config_path>.lock`
    stays in place.

    Args:
        config_path: e.g. `saved_models/models.config`.
        model_name: the name clients ask for (`/v1/models/<name>:predict`).
        base_path: the base path as the server sees it (e.g. `/models/<name>` inside the
            `tensorflow/serving` container), without a version.
        num_versions: the server serves the latest `num_versions` versions.

    Returns:
        The parsed `ModelServerConfig`.

    Raises:
        ValueError if the file exists and is not a `ModelServerConfig` text proto;
        TimeoutError if another writer holds the lock for `LOCK_TIMEOUT_SECONDS`.
    """
    config_path = os.path.abspath(config_path)
    directory = os.path.dirname(config_path)
    os.makedirs(directory, exist_ok=True)
    with exclusive_lock(f"{config_path}.lock"):
        _remove_abandoned_temporaries(config_path)
        config = model_server_config_pb2.ModelServerConfig()
        if os.path.exists(config_path):
            with open(config_path, encoding="utf-8") as file:
                try:
                    text_format.Parse(file.read(), config)
                except text_format.ParseError as error:
                    raise ValueError(
                        f"{config_path} is not a TF Serving model config (ModelServerConfig): {error}"
                    ) from None
        models = config.model_config_list.config
        kept = [model for model in models if model.name != model_name]
        del models[:]
        models.extend(kept)
        entry = models.add(name=model_name, base_path=base_path, model_platform="tensorflow")
        entry.model_version_policy.latest.num_versions = num_versions
        temporary = temporary_name(f"{config_path}.tmp")
        try:
            with open(temporary, "w", encoding="utf-8") as file:
                file.write(text_format.MessageToString(config))
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, config_path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temporary)
            raise
        sync_directory(directory)
    return config


def _remove_abandoned_temporaries(config_path):
    """Deletes the `<config>.tmp-<host>-<pid>-<n>` files of updates killed before their rename."""
    directory, name = os.path.split(config_path)
    for entry in os.listdir(directory):
        match = match_temporary(entry, re.escape(name) + r"\.tmp")
        path = os.path.join(directory, entry)
        if match and is_abandoned(path, match):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
