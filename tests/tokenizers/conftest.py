"""Corpora for the tokenizer tests.

The default tests train on tfllm's shipped samples (`sample_lines`, `sample_sentences`); the
slow tests check equality with Hugging Face on the developers' full data sets, and skip
without them (`tests.data_files.shared_data`).
"""

import csv

import pytest

from tests.data_files import review_sentences, sample_sentences, shared_data, story_lines


@pytest.fixture(scope="session")
def sample_lines():
    """The shipped stories line by line (with "\\n") then the shipped reviews."""
    return story_lines() + [sentence + "\n" for sentence in review_sentences()]


@pytest.fixture(scope="session")
def sentences():
    """The shipped reviews and story lines, one sentence or paragraph each."""
    return sample_sentences()


@pytest.fixture(scope="session")
def shakespeare_lines():
    """Every line of Tiny Shakespeare with its "\\n" (developers' data; skips without it)."""
    with open(shared_data("tinyshakespeare.txt"), encoding="utf-8") as file:
        return [line + "\n" for line in file.read().split("\n")[:-1]]


@pytest.fixture(scope="session")
def sst2_sentences():
    """SST-2's (train, dev) sentences (developers' data; skips without them)."""

    def read(relative):
        with open(shared_data(relative), encoding="utf-8", newline="") as file:
            return [row["sentence"] for row in csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE)]

    return read("sst2/train.tsv"), read("sst2/dev.tsv")
