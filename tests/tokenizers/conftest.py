import os

import pytest

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")
SHAKESPEARE = os.path.normpath(os.path.join(DATA, "tinyshakespeare.txt"))
SST2_TRAIN = os.path.normpath(os.path.join(DATA, "sst2", "train.tsv"))
SST2_DEV = os.path.normpath(os.path.join(DATA, "sst2", "dev.tsv"))


def require(path):
    if not os.path.isfile(path):
        pytest.skip(f"needs the shared data file {path} (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def shakespeare_path():
    return require(SHAKESPEARE)


@pytest.fixture(scope="session")
def shakespeare_lines(shakespeare_path):
    """Every line of Tiny Shakespeare with its "\\n", as the causal-LM pipeline feeds them."""
    with open(shakespeare_path, encoding="utf-8") as file:
        return [line + "\n" for line in file.read().split("\n")[:-1]]


@pytest.fixture(scope="session")
def sst2_sentences():
    import csv

    def read(path):
        with open(require(path), encoding="utf-8", newline="") as file:
            return [row["sentence"] for row in csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE)]

    return read(SST2_TRAIN), read(SST2_DEV)
