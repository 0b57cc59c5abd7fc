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


# Strings that stress pre-tokenization, byte handling and round trips.
TRICKY_STRINGS = [
    "",
    " ",
    "   ",
    "a",
    "Hello, world!",
    "  leading and trailing  ",
    "runs   of    spaces before words",
    "spaces   123 before  digits   4.5",
    "punctuation   !!! ?? ... ---",
    "it's   'tis  don't  we'll they're I'd you've I'm",
    "  's  't ''s 's's",
    "IT'S SHOUTING'S",
    "tabs\there\t\tand\t\t\tthere",
    "new\nlines\n\nand\n\n\n",
    "windows\r\nline\r\nends\r\n",
    "mixed \t\n whitespace \n\t here",
    "non\u00a0breaking\u00a0\u00a0spaces",
    "ideographic\u3000space\u3000\u3000x",
    "\u2028line\u2029paragraph\x85next\x0bvt\x0cff",
    "trailing whitespace \t\n",
    "emoji 😀😃 👍🏽 👩‍👩‍👧‍👦 🏳️‍🌈 🇫🇷",
    "CJK 日本語のテキスト 中文文本 한국어",
    "combining e\u0301 a\u0300 n\u0303 Z\u0351\u036b\u0343\u036a",
    "numbers ١٢٣ ½ ² Ⅻ 10,000.5",
    "math ∑∫√ and symbols ©®™ $€¥",
    "zero\u200bwidth\u200c\u200djoiners\ufeffbom",
    "control \x00\x01\x1f\x7f chars",
    "<|endoftext|> is not special in text",
    "x" * 3000,
    "abc" * 1000,
    "   \n   \n",
]
