import importlib.util
import os

import pytest

from tests.data_files import story_lines
from tfllm.data.samples import REVIEWS

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def shakespeare_sample(tmp_path):
    """A plain-text corpus: tfllm's shipped stories, ten times over (about 40 KB)."""
    sample = tmp_path / "sample.txt"
    sample.write_text("".join(story_lines() * 10), encoding="utf-8")
    return str(sample)


@pytest.fixture
def sst2_sample(tmp_path):
    """SST-2-format train and dev files (header `sentence<TAB>label`) from the shipped reviews."""
    with open(REVIEWS, encoding="utf-8") as file:
        header, *rows = file.readlines()
    train, dev = tmp_path / "train.tsv", tmp_path / "dev.tsv"
    train.write_text(header + "".join(rows[:96] * 8), encoding="utf-8")
    dev.write_text(header + "".join(rows[96:]), encoding="utf-8")
    return str(train), str(dev)
