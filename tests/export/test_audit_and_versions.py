"""The op audit, atomic versions under a kill, models.config, and the REST emulation."""

import os
import signal
import subprocess
import sys
import textwrap

import keras
import pytest
import tensorflow as tf

from tfllm.export import AuditError, audit, existing_versions, predict


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
    assert [name.startswith(".tmp-1-") for name in os.listdir(base)] == [True]

    # The next export removes the dead process's leftovers and writes version 1.
    from tfllm.export import _versions

    module = _Module(lambda x: {"y": x + 1})
    path = _versions.save_version(module, base, {"serving_default": module.function})
    assert os.listdir(base) == ["1"] and path.endswith("/1")


class _TwoInputs(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"), tf.TensorSpec([None], tf.int32, name="n")])
    def repeat(self, text, n):
        return {"text": tf.strings.join([text, tf.strings.as_string(n)]), "raw_bytes": text, "n": n * 2}


def test_predict_follows_the_rest_api(tmp_path):
    module = _TwoInputs()
    path = str(tmp_path / "m")
    tf.saved_model.save(module, path, signatures={"serving_default": module.repeat})
    loaded = tf.saved_model.load(path)
    rows = predict(loaded, {"instances": [{"text": "a", "n": 1}, {"text": {"b64": "w6k="}, "n": 2}]})
    assert rows["predictions"] == [
        {"text": "a1", "raw_bytes": {"b64": "YQ=="}, "n": 2},
        {"text": "é2", "raw_bytes": {"b64": "w6k="}, "n": 4},
    ]
    with pytest.raises(ValueError, match="'text' is not valid UTF-8"):
        predict(loaded, {"instances": [{"text": {"b64": "/w=="}, "n": 2}]})
    columns = predict(loaded, {"inputs": {"text": ["a", "b"], "n": [1, 2]}})
    assert columns["outputs"]["text"] == ["a1", "b2"] and columns["outputs"]["n"] == [2, 4]
    with pytest.raises(ValueError, match="exactly one"):
        predict(loaded, {"instances": [], "inputs": {}})
    with pytest.raises(ValueError, match="Missing input 'n'"):
        predict(loaded, {"instances": [{"text": "a"}]})
    with pytest.raises(ValueError, match="not found"):
        predict(loaded, {"instances": [], "signature_name": "nope"})
