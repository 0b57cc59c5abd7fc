import importlib.util
import os

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def shakespeare_sample(tmp_path):
    """The first 1,500 lines of Tiny Shakespeare, or generated text when the file is absent."""
    path = os.path.join(SHARED_DATA, "tinyshakespeare.txt")
    sample = tmp_path / "sample.txt"
    if os.path.exists(path):
        with open(path, encoding="utf-8") as file:
            sample.write_text("".join(file.readlines()[:1500]), encoding="utf-8")
    else:
        words = ["thou", "art", "the", "king", "of", "rome", "and", "i", "am", "thy", "friend"]
        sample.write_text("\n".join(" ".join(words[(i * 7 + j) % 11] for j in range(9)) for i in range(1500)))
    return str(sample)


@pytest.fixture
def sst2_sample(tmp_path):
    """Small SST-2-format train and dev files (header `sentence<TAB>label`)."""
    train_path = os.path.join(SHARED_DATA, "sst2", "train.tsv")
    if os.path.exists(train_path):
        with open(train_path, encoding="utf-8") as file:
            lines = file.readlines()
        header, rows = lines[0], lines[1:]
    else:
        header = "sentence\tlabel\n"
        rows = [f"{'a good fine film' if i % 2 else 'a bad dull film'} {i}\t{i % 2}\n" for i in range(1200)]
    train, dev = tmp_path / "train.tsv", tmp_path / "dev.tsv"
    train.write_text(header + "".join(rows[:800]), encoding="utf-8")
    dev.write_text(header + "".join(rows[800:1000]), encoding="utf-8")
    return str(train), str(dev)
