"""Property-based tests of the readers and tokenizers: nothing silently wrong, nothing lost.

Files are written from generated rows (or bytes), then read back. Every outcome must be the
rows that were written, or a ValueError that names the file and the line; never an extra row,
a lost row or a changed text or label. The tokenizers must round-trip any valid UTF-8 (BPE) and
take any bytes without crashing.

Examples are derandomized (the same on every run) and few, so the module stays quick on CI.
"""

import csv
import itertools
import json

import keras_hub
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.data_files import review_sentences
from tfllm.data import read_classification_file, token_stream
from tfllm.data.bert_pretraining import _check_one_batch, sentence_pairs
from tfllm.data.samples import STORIES
from tfllm.tokenizers import BytePairTokenizer, WordPieceTokenizer
from tfllm.tokenizers._tensors import sanitize_utf8


def bounded(max_examples):
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


FIELD_LIMIT = csv.field_size_limit()
NEWLINES = st.sampled_from(["\n", "\r\n", "\r"])
# TSV has no quoting: its cells cannot hold a tab or a line end. A U+FEFF opening the file is a
# byte-order mark, so no cell starts with one.
TSV_CELL = st.text(st.characters(blacklist_characters="\t\r\n", blacklist_categories=("Cs",)), min_size=1, max_size=12)
ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
LABEL = st.text(st.characters(whitelist_categories=("Lu", "Ll", "Nd")), min_size=1, max_size=4)
COLUMN_NAMES = {"sentence", "label", "pair"}


@pytest.fixture(scope="module")
def new_path(tmp_path_factory):
    """A fresh file name per call: hypothesis runs many examples in one test."""
    directory, numbers = tmp_path_factory.mktemp("files"), itertools.count()
    return lambda extension: str(directory / f"f{next(numbers)}{extension}")


def write(path, data):
    with open(path, "wb") as file:
        file.write(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def assert_names_file_and_line(error, path, line=None):
    message = str(error)
    assert message.startswith(f"{path}, line {'' if line is None else line}"), message


def read_or_error(path, **kwargs):
    try:
        return read_classification_file(path, **kwargs), None
    except ValueError as error:
        return None, error


# ----------------------------------------------------------------- TSV


def tsv_file(rows, newlines, header, bom, final_newline):
    lines = (["sentence\tlabel"] if header else []) + ["\t".join(row) for row in rows]
    text = "".join(line + newline for line, newline in zip(lines, newlines))
    if not final_newline:
        text = text[: -len(newlines[len(lines) - 1])]
    return ("\ufeff" if bom else "") + text


TSV_ROWS = st.lists(st.tuples(TSV_CELL.filter(lambda text: text[0] != "\ufeff"), LABEL), min_size=1, max_size=6)


@bounded(60)
@given(TSV_ROWS, st.lists(NEWLINES, min_size=7, max_size=7), st.booleans(), st.booleans())
def test_tsv_with_header_reads_what_was_written(new_path, rows, newlines, bom, final_newline):
    path = write(new_path(".tsv"), tsv_file(rows, newlines, True, bom, final_newline))
    examples, error = read_or_error(path)
    if ("sentence", "label") in rows:
        assert_names_file_and_line(error, path)  # a row that repeats the header
        return
    assert error is None, error
    assert list(zip(examples.texts, examples.labels)) == [(text, label) for text, label in rows]
    assert examples.line_numbers == list(range(2, len(rows) + 2)) and examples.header == ["sentence", "label"]


@bounded(60)
@given(TSV_ROWS, st.lists(NEWLINES, min_size=6, max_size=6), st.booleans())
def test_tsv_without_header_reads_what_was_written_or_asks(new_path, rows, newlines, bom):
    # A first row naming the columns is a header by definition; any other first row is read, or
    # the reader says it cannot tell: it never drops it.
    rows = [(text, label) for text, label in rows if not {text.strip().lower(), label.lower()} & COLUMN_NAMES]
    if not rows:
        return
    path = write(new_path(".tsv"), tsv_file(rows, newlines, False, bom, True))
    expected = [(text, label) for text, label in rows]
    examples, error = read_or_error(path)
    if error is not None:
        assert_names_file_and_line(error, path, 1)
        assert "has_header=True" in str(error) and "has_header=False" in str(error)
    else:
        assert list(zip(examples.texts, examples.labels)) == expected and examples.header is None
    examples = read_classification_file(path, has_header=False)
    assert list(zip(examples.texts, examples.labels)) == expected


@bounded(60)
@given(
    st.lists(st.tuples(st.one_of(st.binary(min_size=1, max_size=12), TSV_CELL.map(str.encode)), LABEL), min_size=1,
             max_size=5),
    st.booleans(),
)
def test_tsv_bytes_that_are_not_utf8_name_their_line(new_path, rows, bom):
    rows = [(text.replace(b"\t", b" ").replace(b"\r", b" ").replace(b"\n", b" "), label) for text, label in rows]
    data = (b"\xef\xbb\xbf" if bom else b"") + b"sentence\tlabel\n"
    data += b"".join(text + b"\t" + label.encode() + b"\n" for text, label in rows)
    path = write(new_path(".tsv"), data)
    examples, error = read_or_error(path)
    bad = [line for line, (text, _) in enumerate(rows, start=2) if not is_utf8(text)]
    if bad:
        assert_names_file_and_line(error, path, bad[0])
        assert "not UTF-8" in str(error)
        return
    if any(text == b"sentence" and label == "label" for text, label in rows):
        assert_names_file_and_line(error, path)
        return
    assert error is None, error
    assert list(zip(examples.texts, examples.labels)) == [(text.decode(), label) for text, label in rows]


def is_utf8(data):
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


# ----------------------------------------------------------------- CSV


@bounded(60)
@given(
    st.lists(st.tuples(ANY_TEXT, ANY_TEXT, LABEL), min_size=1, max_size=5),
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
    st.booleans(),
)
def test_csv_reads_what_was_written_with_any_quoting_and_line_ends(new_path, rows, newline, quoting, bom):
    path = new_path(".csv")
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator=newline, quoting=quoting)
        writer.writerow(["sentence", "pair", "label"])
        writer.writerows(rows)
    examples, error = read_or_error(path, pair_column="pair")
    if ("sentence", "pair", "label") in rows:
        assert_names_file_and_line(error, path)  # a row that repeats the header
        return
    assert error is None, error
    assert list(zip(examples.texts, examples.pairs, examples.labels)) == rows
    assert examples.line_numbers == sorted(set(examples.line_numbers)) and examples.line_numbers[0] >= 2


@bounded(8)
@given(st.integers(FIELD_LIMIT - 3, FIELD_LIMIT + 3), st.sampled_from([".csv", ".tsv", ".jsonl"]))
def test_huge_fields_are_read_whole_or_named(new_path, length, extension):
    text = "x" * length
    if extension == ".jsonl":
        data = json.dumps({"sentence": "short", "label": "a"}) + "\n" + json.dumps({"sentence": text, "label": "b"})
    else:
        delimiter = "," if extension == ".csv" else "\t"
        data = f"sentence{delimiter}label\nshort{delimiter}a\n{text}{delimiter}b\n"
    path = write(new_path(extension), data)
    examples, error = read_or_error(path)
    if length > FIELD_LIMIT and extension != ".jsonl":
        assert_names_file_and_line(error, path, 3)
        assert "field" in str(error)
    else:
        assert error is None, error
        assert examples.texts == ["short", text] and examples.labels == ["a", "b"]


@bounded(40)
@given(st.binary(max_size=60), st.sampled_from([".csv", ".tsv", ".jsonl"]))
def test_random_bytes_parse_or_name_the_file(new_path, data, extension):
    # A valid first row, then anything: rows, or a ValueError naming the file (and line).
    first = {".csv": b"sentence,label\n", ".tsv": b"sentence\tlabel\n", ".jsonl": b'{"sentence": "a", "label": 1}\n'}
    path = write(new_path(extension), first[extension] + data)
    examples, error = read_or_error(path)
    if error is not None:
        assert str(error).startswith(path), error
        return
    assert len(examples.texts) == len(examples.labels) == len(examples.line_numbers) > 0
    assert all(isinstance(text, str) and text for text in examples.texts)


# ----------------------------------------------------------------- JSONL

JSON_LABEL = st.one_of(LABEL, st.integers(-5, 5), st.booleans())


@bounded(60)
@given(
    st.lists(st.tuples(ANY_TEXT, JSON_LABEL, st.booleans()), min_size=1, max_size=5),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
    st.booleans(),
)
def test_jsonl_reads_what_was_written(new_path, rows, newline, ascii_only, bom):
    lines, expected, line_numbers = [], [], []
    for text, label, blank_before in rows:
        if blank_before:
            lines.append("")
        lines.append(json.dumps({"sentence": text, "label": label}, ensure_ascii=ascii_only))
        expected.append((text, label if isinstance(label, str) else json.dumps(label)))
        line_numbers.append(len(lines))
    path = write(new_path(".jsonl"), ("\ufeff" if bom else "") + newline.join(lines) + newline)
    examples = read_classification_file(path)
    assert list(zip(examples.texts, examples.labels)) == expected and examples.line_numbers == line_numbers


@bounded(30)
@given(st.lists(st.one_of(st.integers(), st.floats(allow_nan=False), st.none(), st.lists(st.integers(), max_size=2),
                          st.dictionaries(LABEL, st.integers(), max_size=1)), min_size=1, max_size=3))
def test_jsonl_values_that_are_not_text_name_file_line_and_column(new_path, values):
    lines = [json.dumps({"sentence": "fine", "label": 1})] + [json.dumps({"sentence": value, "label": 1}) for value in values]
    path = write(new_path(".jsonl"), "\n".join(lines) + "\n")
    examples, error = read_or_error(path)
    assert_names_file_and_line(error, path, 2)
    assert "'sentence'" in str(error)


# ----------------------------------------------------------------- plain-text corpora


@pytest.fixture(scope="module")
def byte_tokenizer():
    return keras_hub.tokenizers.ByteTokenizer(lowercase=False)


@bounded(25)
@given(st.binary(min_size=1, max_size=80))
def test_causal_lm_stream_is_the_file_as_documented(new_path, byte_tokenizer, data):
    # Lines end at "\n"; every "\r" is dropped; the last line gets a "\n"; other bytes pass as they are.
    path = write(new_path(".txt"), data)
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines = lines[:-1]
    expected = [*b"".join(line.replace(b"\r", b"") + b"\n" for line in lines), 256]
    assert [int(token) for token in token_stream(path, byte_tokenizer, 256)] == expected


SENTENCE_LINE = st.text(st.sampled_from("ab \t"), max_size=4)


@bounded(20)
@given(st.lists(SENTENCE_LINE, min_size=1, max_size=10), st.integers(1, 4))
def test_pretraining_pairs_are_counted_as_they_are_streamed(new_path, lines, batch_size):
    path = write(new_path(".txt"), "".join(line + "\n" for line in lines))
    sentences = [line.strip(" \t") != "" for line in lines]
    expected = sum(first and second for first, second in zip(sentences, sentences[1:]))
    if not any(line.strip() for line in lines):
        return  # an empty file is refused before: check_files
    assert sum(1 for _ in sentence_pairs(path, seed=0)) == expected
    if expected >= batch_size:
        _check_one_batch([path], batch_size, batch_size)
    else:
        with pytest.raises(ValueError, match=rf"{path}.* {expected} sentence pairs"):
            _check_one_batch([path], batch_size, batch_size)


# ----------------------------------------------------------------- tokenizers


@pytest.fixture(scope="module")
def bpe():
    return BytePairTokenizer.train([STORIES], 400)


@pytest.fixture(scope="module")
def wordpiece():
    return WordPieceTokenizer.train(review_sentences(), 300)


# U+FDD0 is the pre-tokenizer's marker, dropped from input (BytePairTokenizer's docstring).
UNICODE_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufdd0"), max_size=30)


@bounded(60)
@given(st.lists(UNICODE_TEXT, min_size=1, max_size=8))
def test_bpe_round_trips_any_valid_utf8(bpe, texts):
    decoded = bpe.detokenize(bpe(texts)).numpy()
    assert [text.decode("utf-8") for text in decoded] == texts


@bounded(40)
@given(st.lists(st.binary(max_size=30), min_size=1, max_size=8))
def test_tokenizers_take_any_bytes(bpe, wordpiece, data):
    strings = tf.constant(data)
    ids = bpe(strings)
    assert tf.reduce_all((ids.flat_values >= 0) & (ids.flat_values < bpe.vocabulary_size()))
    repaired = [text.decode("utf-8").replace("\ufdd0", "") for text in sanitize_utf8(strings).numpy()]
    assert [text.decode("utf-8") for text in bpe.detokenize(ids).numpy()] == repaired
    ids = wordpiece(strings)
    assert tf.reduce_all((ids.flat_values >= 0) & (ids.flat_values < wordpiece.vocabulary_size()))
    assert wordpiece.detokenize(ids).shape == (len(data),)
