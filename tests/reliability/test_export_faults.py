"""Exports and `models.config` updates killed (SIGKILL) at random points and at chosen steps,
beside concurrent writers: afterwards every visible version loads and has its warm-up file,
no entry of a completed `models.config` update is lost, and the file always parses.

Export workers save a tiny `tf.Module` with a variable and an asset (a lookup table's
vocabulary file), so a kill can land in every part of a SavedModel's writing; config writers
load `tfllm/export/_shared_files.py` alone (it imports no TensorFlow), so they start at once.
"""

import contextlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tests.export.conftest import SHARED_FILES_MODULE
from tfllm.export import _versions, existing_versions, read_warmup_requests, update_models_config

WORDS = ["alpha", "beta", "gamma"]

_EXPORT_WORKER = textwrap.dedent(
    """
    import os, random, signal, sys, threading, time
    import numpy as np
    import tensorflow as tf
    from tfllm.export import _shared_files, _versions

    base, config, vocabulary, name, mode, go = sys.argv[1:7]

    class Lookup(tf.Module):
        def __init__(self):
            super().__init__()
            self.scale = tf.Variable(2.0)
            initializer = tf.lookup.TextFileInitializer(
                vocabulary, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER
            )
            self.table = tf.lookup.StaticHashTable(initializer, -1)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="word")])
        def serve(self, word):
            return {"id": self.table.lookup(word), "scale": tf.fill(tf.shape(word), self.scale)}

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    exports = 0  # the number of the export under way

    def kill_in_second_export(owner, attribute, when=lambda *args: True, after=False):
        # Patches `owner.attribute` to die at its first call in the second export for which
        # `when(*args)` holds (before the call, or after it).
        original = getattr(owner, attribute)

        def step(*args, **kwargs):
            now = exports == 2 and when(*args)
            if now and not after:
                die()
            result = original(*args, **kwargs)
            if now and after:
                die()
            return result

        setattr(owner, attribute, step)

    # A chosen step of the second export dies; "delay" workers are killed by the test.
    if mode == "save":  # at a random moment of writing the SavedModel or finishing the version
        def start_timer(*args):
            threading.Timer(random.uniform(0, 0.1), die).start()
            return False
        kill_in_second_export(tf.saved_model, "save", when=start_timer)
    elif mode == "warmup":  # the SavedModel written, its warm-up file not
        kill_in_second_export(_versions, "write_warmup_requests")
    elif mode == "flush":  # complete, not yet flushed to disk
        kill_in_second_export(_versions, "_sync_tree")
    elif mode == "rename":  # complete and flushed, not yet renamed
        kill_in_second_export(os, "rename", when=lambda source, *rest: os.path.basename(source).startswith(".tmp-"))
    elif mode == "renamed":  # renamed into place, models.config not yet updated
        kill_in_second_export(_shared_files, "sync_directory", when=lambda path: path == os.path.abspath(base), after=True)
    elif mode == "config":  # models.config's new text written beside it, not yet renamed over it
        kill_in_second_export(os, "replace", when=lambda source, target: target.endswith("models.config"))

    module = Lookup()
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.001)
    for exports in range(1, 201):
        path = _versions.save_version(
            module, base, {"serving_default": module.serve},
            warmup_requests=[("serving_default", {"word": np.array([b"beta", b"zeta"], dtype=object)})],
        )
        print("version", os.path.basename(path), flush=True)
        if mode == "save" and exports == 2:
            time.sleep(30)  # The timer started in `tf.saved_model.save` kills it before the update.
        entry = f"{name}-{os.path.basename(path)}"
        _shared_files.update_models_config(config, entry, f"/models/{entry}")
        print("entry", entry, flush=True)
    """
)

_CONFIG_WRITER = textwrap.dedent(
    """
    import importlib.util, os, signal, sys, time

    module_path, config_path, prefix, go, kill_at = sys.argv[1:6]
    spec = importlib.util.spec_from_file_location("shared_files", module_path)
    shared_files = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shared_files)
    if int(kill_at):  # Die with the new text written beside the file, before the rename.
        replace, calls = os.replace, []
        def replace_or_die(*args):
            calls.append(1)
            if len(calls) == int(kill_at):
                os.kill(os.getpid(), signal.SIGKILL)
            return replace(*args)
        os.replace = replace_or_die
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.001)
    for i in range(10_000):
        shared_files.update_models_config(config_path, f"{prefix}{i}", f"/models/{prefix}{i}")
        print(f"{prefix}{i}", flush=True)  # Completed: this entry must stay in the file.
    """
)


def _config_names(path):
    config = model_server_config_pb2.ModelServerConfig()
    with open(path, encoding="utf-8") as file:
        text_format.Parse(file.read(), config)  # Raises if the file does not parse.
    return {model.name for model in config.model_config_list.config}


class _ConfigReader(threading.Thread):
    """Reads the config over and over, as TF Serving polls it: each read must parse, and no
    name may disappear (every writer here only adds names)."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.problems, self.reads, self.stop = path, [], 0, threading.Event()

    def run(self):
        seen = set()
        while not self.stop.is_set():
            try:
                names = _config_names(self.path)
            except FileNotFoundError:
                continue
            except Exception as error:  # noqa: BLE001 - any failure to parse is the finding
                self.problems.append(f"{type(error).__name__}: {error}")
                continue
            self.reads += 1
            if seen - names:
                self.problems.append(f"names disappeared: {sorted(seen - names)[:5]}")
            seen = names
            time.sleep(0.002)


def _start(script, *arguments):
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, arguments)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )


@contextlib.contextmanager
def _killed_at_exit(processes):
    """Kills these processes (started here) if the test leaves early."""
    try:
        yield
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def _wait_ready(process):
    # Nothing follows "ready" until the test creates the go file: reading this line leaves
    # nothing in the pipe's buffer that `communicate` would miss.
    line = process.stdout.readline()
    assert line.strip() == "ready", process.stderr.read()[-3000:]


def _check_versions(base):
    """Every integer-named directory loads, answers, and has a warm-up file that parses."""
    versions = existing_versions(base)
    for version in versions:
        path = os.path.join(base, str(version))
        assert os.path.isfile(os.path.join(path, _versions.WARMUP_FILE)), f"version {version} has no warm-up file"
        logs = read_warmup_requests(os.path.join(path, _versions.WARMUP_FILE))
        assert len(logs) == 1, f"version {version}: {len(logs)} warm-up records"
        answer = tf.saved_model.load(path).signatures["serving_default"](word=tf.constant(["beta", "zeta"]))
        assert answer["id"].numpy().tolist() == [1, -1] and answer["scale"].numpy().tolist() == [2.0, 2.0]
    return versions


# Each step's (versions, models.config entries) its worker reports before it dies there, in its
# second export. A kill timed in "save" may land after the save returned, later in the export.
_REPORTED = {
    "save": ([1, 1], [2, 1]),
    "warmup": ([1, 1],),
    "flush": ([1, 1],),
    "rename": ([1, 1],),
    "renamed": ([1, 1],),
    "config": ([2, 1],),
}
_STEPS = list(_REPORTED)


@pytest.mark.parametrize("seed", [0, 1])
def test_exports_killed_at_random_points_and_steps_beside_concurrent_writers(tmp_path, seed):
    """Four workers export into one base path and update one models.config at once: one is
    killed after a random delay, three die at a chosen step of their second export (half of
    `_STEPS` in each run)."""
    rng = random.Random(seed)
    base, config = tmp_path / "saved_models" / "lookup", tmp_path / "saved_models" / "models.config"
    vocabulary = tmp_path / "vocabulary.txt"
    vocabulary.write_text("\n".join(WORDS) + "\n")
    steps = _STEPS[3 * seed : 3 * seed + 3]
    modes = ["delay", *steps]
    go = tmp_path / "go"
    workers = [_start(_EXPORT_WORKER, base, config, vocabulary, f"w{i}", mode, go) for i, mode in enumerate(modes)]
    reader = _ConfigReader(str(config))
    outputs = []
    with _killed_at_exit(workers):
        for worker in workers:
            _wait_ready(worker)
        reader.start()
        go.touch()  # All start exporting at once.
        time.sleep(rng.uniform(0.1, 2.0))
        workers[0].send_signal(signal.SIGKILL)
        for worker, mode in zip(workers, modes):
            stdout, stderr = worker.communicate(timeout=60)
            assert worker.returncode == -signal.SIGKILL, f"{mode}: {worker.returncode}\n{stderr[-3000:]}"
            outputs.append(stdout.split("\n"))
        reader.stop.set()
        reader.join()

    reported = [[line.split() for line in lines if line] for lines in outputs]
    completed = [words[1] for lines in reported for words in lines if words[0] == "version"]
    entries = {words[1] for lines in reported for words in lines if words[0] == "entry"}
    assert len(completed) == len(set(completed)), completed
    # Each step worker died where it was meant to: in its second export, or (config) in the
    # second models.config update.
    for mode, lines in zip(modes[1:], reported[1:]):
        counts = [sum(words[0] == kind for words in lines) for kind in ("version", "entry")]
        assert counts in _REPORTED[mode], (mode, lines)
    versions = _check_versions(base)
    assert {int(version) for version in completed} <= set(versions)
    assert not reader.problems and reader.reads > 0, reader.problems
    assert entries <= _config_names(config)

    # The next export clears the killed exports' temporaries and takes the next version.
    module = tf.Module()
    module.serve = tf.function(
        lambda word: {"id": tf.zeros_like(word, tf.int64)}, input_signature=[tf.TensorSpec([None], tf.string)]
    )
    path = _versions.save_version(module, base, {"serving_default": module.serve})
    assert os.path.basename(path) == str(max(versions) + 1)
    assert sorted(os.listdir(base)) == sorted(str(version) for version in [*versions, max(versions) + 1])
    update_models_config(config, "last", "/models/last")
    assert sorted(name for name in os.listdir(config.parent) if name.startswith("models.config")) == [
        "models.config",
        "models.config.lock",
    ]


@pytest.mark.parametrize("seed", range(4))
def test_models_config_writers_killed_at_random_points(tmp_path, seed):
    """Three writers add names at once; one is killed after a random delay, one dies with its
    new text written beside the file; a reader polls the file throughout."""
    rng = random.Random(seed)
    config, go = tmp_path / "models.config", tmp_path / "go"
    kill_at = rng.randint(1, 20)
    writers = [_start(_CONFIG_WRITER, SHARED_FILES_MODULE, config, f"w{i}-", go, k) for i, k in enumerate([0, kill_at, 0])]
    reader = _ConfigReader(str(config))
    completed = set()
    with _killed_at_exit(writers):
        for writer in writers:
            _wait_ready(writer)
        reader.start()
        go.touch()
        time.sleep(rng.uniform(0.05, 0.6))
        writers[0].send_signal(signal.SIGKILL)
        time.sleep(0.2)
        writers[2].terminate()  # An ordinary stop, between or during updates.
        for writer in writers:
            stdout, stderr = writer.communicate(timeout=30)
            assert writer.returncode in (-signal.SIGKILL, -signal.SIGTERM), stderr[-3000:]
            completed.update(stdout.split()[1:])  # after "ready"
        reader.stop.set()
        reader.join()
    assert not reader.problems and reader.reads > 0, reader.problems
    assert len(completed) >= kill_at - 1
    names = _config_names(config)
    assert completed <= names

    # The next update removes any temporary a killed writer left and keeps every name.
    update_models_config(config, "last", "/models/last")
    assert _config_names(config) == names | {"last"}
    assert sorted(os.listdir(tmp_path)) == ["go", "models.config", "models.config.lock"]
