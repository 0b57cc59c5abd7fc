"""The README's main job: the offline quickstart, shortened, end to end."""

import os

from tests.examples.conftest import load_example


def test_quickstart_trains_generates_exports_and_serves(tmp_path):
    export_dir = tmp_path / "saved_models"
    metrics = load_example("quickstart").main(
        ["--output-dir", str(tmp_path / "run"), "--export-dir", str(export_dir), "--gpt-steps", "30",
         "--classifier-epochs", "2"]
    )
    # The two base paths and the config (with the lock file concurrent exports take on it).
    assert sorted(os.listdir(export_dir)) == ["gpt", "models.config", "models.config.lock", "sentiment"]
    assert metrics["exports"] == [str(export_dir / "gpt" / "1"), str(export_dir / "sentiment" / "1")]
    assert metrics["served_without_tfllm"]
    completions, generated, classified = metrics["served"]
    assert len(completions["predictions"]) == 2 and all(isinstance(text, str) for text in completions["predictions"])
    # The served greedy completion is the in-process greedy continuation (32 new tokens both).
    for prompt, served, local in zip(["The lighthouse keeper", "One day the fox"], completions["predictions"], metrics["gpt_greedy"]):
        assert local == prompt + served
    assert len(generated["outputs"]) == 2
    assert [row["label"] in ("positive", "negative") for row in classified["predictions"]] == [True, True]
