"""The text tests read: tfllm's shipped samples, and the developers' optional data sets.

Default tests use only what a fresh clone has: the samples in `tfllm/data/samples/` (or text
the test writes itself). A test against a real data set (Tiny Shakespeare, SST-2) is a slow
test that gets its file from `shared_data`, which skips the test when the file is absent.

The developers' data sets are looked for in `$TFLLM_SHARED_DATA`, by default `../shared/data`
beside the repository. `TFLLM_SHARED_DATA=/nonexistent pytest ...` runs the suite as a fresh
clone elsewhere would.
"""

import csv
import os

import pytest

from tfllm.data.samples import REVIEWS, STORIES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shared_data_directory():
    return os.environ.get("TFLLM_SHARED_DATA") or os.path.join(os.path.dirname(ROOT), "shared", "data")


def shared_data(relative):
    """The path of `relative` in the developers' data sets; skips the test when it is absent."""
    path = os.path.normpath(os.path.join(shared_data_directory(), relative))
    if not os.path.isfile(path):
        pytest.skip(
            f"needs ../shared/data/{relative} (the developers' data sets; set TFLLM_SHARED_DATA to "
            f"their folder): not found at {path}"
        )
    return path


def story_lines():
    """Every line of the shipped stories with its "\\n", as the causal-LM pipeline feeds them."""
    with open(STORIES, encoding="utf-8") as file:
        return [line + "\n" for line in file.read().split("\n")[:-1]]


def review_sentences():
    """The 128 shipped one-line reviews (the `sentence` column of `reviews.tsv`)."""
    with open(REVIEWS, encoding="utf-8", newline="") as file:
        return [row["sentence"] for row in csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE)]


def sample_sentences():
    """The reviews then the stories' non-empty lines: about 11 KB of English sentences."""
    return review_sentences() + [line.strip() for line in story_lines() if line.strip()]
