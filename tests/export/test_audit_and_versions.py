"""The op audit, and atomic versions: under a kill, beside other exports, after a failure."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import pytest
import tensorflow as tf

from tfllm.export import AuditError, _shared_files, _versions, audit, existing_versions


class _Module(tf.Module):
    def __init__(self, function):
        super().__init__()
        self.function = tf.function(function, input_signature=[tf.TensorSpec([None], tf.float32)])


def _saved(tmp_path, function):
    module = _Module(function)
    path = str(tmp_path / "model")
    tf.saved_model.save(module, path, signatures={"serving_default": module.function})
    return path


def test_audit_passes_core_ops_and_lists_them(tmp_path):
    report = audit(_saved(tmp_path, lambda x: {"y": tf.strings.as_string(x * 2.0)}))
    assert report.ok and report.non_core_ops == [] and "Mul" in report.op_counts


@pytest.mark.parametrize(
    "function, problem",
    [
        (lambda x: {"y": tf.py_function(lambda v: v * 2, [x], tf.float32)}, "EagerPyFunc"),
        # keras.ops.slice_update on TensorFlow is XlaDynamicUpdateSlice.
        (lambda x: {"y": keras.ops.slice_update(x, [0], tf.ones([1]))}, "XlaDynamicUpdateSlice"),
        (lambda x: {"y": tf.function(lambda v: v * 2, jit_compile=True)(x)}, "jit_compile"),
    ],
)
def test_audit_fails_on_what_a_default_server_cannot_run(tmp_path, function, problem):
    path = _saved(tmp_path, function)
    with pytest.raises(AuditError, match=problem):
        audit(path)
    assert not audit(path, raise_on_failure=False).ok


def test_audit_names_a_missing_saved_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="saved_model.pb"):
        audit(str(tmp_path))


_KILLED_EXPORT = textwrap.dedent(
    """
    import os, signal, sys
    import tensorflow as tf
    from tfllm.export import _versions

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def double(self, x):
            return {"y": x * 2}

    def killed(path):  # The SavedModel is complete but not yet renamed: die here.
        os.kill(os.getpid(), signal.SIGKILL)

    module = Module()
    _versions.save_version(module, sys.argv[1], {"serving_default": module.double}, check=killed)
    """
)


def test_a_kill_during_export_leaves_no_version(tmp_path):
    base = tmp_path / "saved_models" / "doubler"
    result = subprocess.run([sys.executable, "-c", _KILLED_EXPORT, str(base)], capture_output=True, timeout=300)
    assert result.returncode == -signal.SIGKILL
    assert existing_versions(base) == []
    # The temporary names its machine and its process.
    assert [name.startswith(f".tmp-1-{_shared_files.host_name()}-") for name in os.listdir(base)] == [True]

    # The next export removes the dead process's leftovers and writes version 1.
    module = _Module(lambda x: {"y": x + 1})
    path = _versions.save_version(module, base, {"serving_default": module.function})
    assert os.listdir(base) == ["1"] and path.endswith("/1")


def _save(module, base, **kwargs):
    return _versions.save_version(module, base, {"serving_default": module.function}, **kwargs)


def test_a_version_taken_while_writing_moves_on_to_the_next(tmp_path):
    base = tmp_path / "saved_models" / "doubler"
    module = _Module(lambda x: {"y": x * 2})

    def another_export_finishes_first(temporary):
        _save(module, base)  # Takes version 1, which this export picked too.

    path = _save(module, base, check=another_export_finishes_first)
    assert sorted(os.listdir(base)) == ["1", "2"] and path == str(base / "2")
    tf.saved_model.load(path)

    # An explicit version that another export takes meanwhile is an error, not a rename.
    def another_export_takes_5(temporary):
        _save(module, base, version=5)

    with pytest.raises(FileExistsError, match="another export"):
        _save(module, base, version=5, check=another_export_takes_5)
    assert sorted(os.listdir(base)) == ["1", "2", "5"]


def _dead_pid():
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_abandoned_temporaries_are_judged_by_host_and_age(tmp_path):
    base = tmp_path / "doubler"
    base.mkdir()
    host, dead, alive = _shared_files.host_name(), _dead_pid(), os.getpid()
    stale = time.time() - _shared_files.ABANDONED_AGE_SECONDS - 60
    temporaries = {  # name: (aged, kept)
        f".tmp-1-{host}-{dead}-0": (False, False),  # this machine, process gone
        f".tmp-2-{host}-{alive}-0": (True, True),  # this machine, still running
        f".tmp-3-other-host-{dead}-0": (False, True),  # another machine: cannot ask its processes
        f".tmp-4-other-host-{dead}-0": (True, False),  # ... older than a day
        f".tmp-5-{dead}": (False, True),  # the form without a host
        f".tmp-6-{dead}": (True, False),
    }
    for name, (aged, _) in temporaries.items():
        (base / name).mkdir()
        if aged:
            os.utime(base / name, (stale, stale))
    _save(_Module(lambda x: {"y": x}), base)
    kept = {name for name, (_, keep) in temporaries.items() if keep}
    assert set(os.listdir(base)) == kept | {"1"}


def test_a_failed_export_removes_the_base_directory_it_created_and_nothing_else(tmp_path):
    base = tmp_path / "saved_models" / "broken"
    python_callback = _Module(lambda x: {"y": tf.py_function(lambda v: v, [x], tf.float32)})
    with pytest.raises(AuditError):
        _save(python_callback, base, check=audit)
    assert not base.exists() and (tmp_path / "saved_models").is_dir()

    def untraceable(x):
        raise TypeError("cannot trace this")

    with pytest.raises(TypeError, match="cannot trace this"):
        _save(_Module(untraceable), base)
    assert not base.exists()

    # A base directory that was there before stays, empty or not.
    base.mkdir()
    with pytest.raises(AuditError):
        _save(python_callback, base, check=audit)
    assert base.is_dir() and os.listdir(base) == []
    _save(_Module(lambda x: {"y": x}), base)
    with pytest.raises(AuditError):
        _save(python_callback, base, check=audit)
    assert os.listdir(base) == ["1"]
