"""`models.config`: other models kept, a clear error on a broken file, no entry lost to a
concurrent writer."""

import subprocess
import sys

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tests.export.conftest import CONFIG_WRITER, SHARED_FILES_MODULE
from tfllm.export import update_models_config


def read_names(config_path):
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(config_path.read_text(encoding="utf-8"), config)
    return [model.name for model in config.model_config_list.config]


def test_models_config_keeps_other_models(tmp_path):
    config_path = tmp_path / "models.config"
    update_models_config(config_path, "gpt", "/models/gpt")
    update_models_config(config_path, "sentiment", "/models/sentiment")
    config = update_models_config(config_path, "gpt", "/srv/gpt", num_versions=2)
    entries = {model.name: model for model in config.model_config_list.config}
    assert set(entries) == {"gpt", "sentiment"}
    assert entries["gpt"].base_path == "/srv/gpt" and entries["gpt"].model_version_policy.latest.num_versions == 2
    config_path.write_text("not a config {")
    with pytest.raises(ValueError, match="not a TF Serving model config"):
        update_models_config(config_path, "gpt", "/models/gpt")


def test_concurrent_writers_lose_no_entry(tmp_path):
    config_path, go = tmp_path / "saved_models" / "models.config", tmp_path / "go"
    count = 60
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", CONFIG_WRITER, SHARED_FILES_MODULE, str(config_path), f"w{w}-", str(count), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(3)
    ]
    go.touch()  # All three start updating at once.
    for writer in writers:
        stdout, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr[-3000:]
        assert len(stdout.split()) == count
    names = read_names(config_path)
    assert sorted(names) == sorted(f"w{w}-{i}" for w in range(3) for i in range(count))


def test_a_held_lock_times_out_with_its_name(tmp_path):
    from tfllm.export._shared_files import exclusive_lock

    lock = str(tmp_path / "models.config.lock")
    with exclusive_lock(lock):
        with pytest.raises(TimeoutError, match="models.config.lock"):
            with exclusive_lock(lock, timeout=0.05):
                pass
    with exclusive_lock(lock, timeout=0.05):  # Released on leaving.
        pass
