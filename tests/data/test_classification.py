import importlib.util
import json
import os

import numpy as np
import pytest

from tests.data_files import shared_data
from tfllm.data import build_label_vocabulary, classification_dataset, read_classification_file
from tfllm.data.samples import REVIEWS


class TinyWordPiece:
    """A whitespace tokenizer over a fixed vocabulary, enough to test packing."""

    pad_token_id, unknown_token_id, cls_token_id, sep_token_id = 0, 1, 2, 3

    def __init__(self, words):
        import tensorflow as tf

        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(words, list(range(4, 4 + len(words)))), default_value=1
        )

    def __call__(self, strings):
        import tensorflow as tf

        return tf.cast(self._table.lookup(tf.strings.split(strings)), tf.int32)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_reads_tsv_with_header(tmp_path):
    path = write(tmp_path / "train.tsv", "sentence\tlabel\ngood movie\t1\nbad film\t0\n")
    texts, pairs, labels, lines = read_classification_file(path)
    assert texts == ["good movie", "bad film"] and pairs is None and labels == ["1", "0"] and lines == [2, 3]


def test_reads_headerless_tsv_by_position(tmp_path):
    path = write(tmp_path / "agnews.tsv", "stocks fall\tBusiness\nteam wins\tSports\n")
    examples = read_classification_file(path, has_header=False)  # two rows cannot tell (see below)
    assert examples.labels == ["Business", "Sports"] and examples.header is None


def test_reads_jsonl_and_csv_pairs(tmp_path):
    rows = [{"premise": "a b", "hypothesis": "b", "label": "yes"}, {"premise": "c", "hypothesis": "d", "label": "no"}]
    jsonl = write(tmp_path / "pairs.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    examples = read_classification_file(jsonl, text_column="premise", pair_column="hypothesis")
    assert examples.pairs == ["b", "d"]
    csv_path = write(tmp_path / "pairs.csv", 'premise,hypothesis,label\n"a, b",b,yes\n')
    assert read_classification_file(csv_path, "premise", "hypothesis").texts == ["a, b"]


def test_row_without_label_names_file_and_line(tmp_path):
    path = write(tmp_path / "bad.tsv", "sentence\tlabel\ngood\t1\nno label here\n")
    with pytest.raises(ValueError, match=r"bad.tsv, line 3: the row has no label"):
        read_classification_file(path)


def test_bad_json_names_line(tmp_path):
    path = write(tmp_path / "bad.jsonl", '{"sentence": "a", "label": 1}\n{oops\n')
    with pytest.raises(ValueError, match=r"bad.jsonl, line 2: not valid JSON"):
        read_classification_file(path)


def test_unseen_validation_label_names_file_and_line(tmp_path):
    tokenizer = TinyWordPiece(["good", "bad"])
    train = write(tmp_path / "train.tsv", "sentence\tlabel\ngood\tpos\nbad\tneg\n")
    dev = write(tmp_path / "dev.tsv", "sentence\tlabel\ngood\tpos\nbad\tneutral\n")
    _, vocabulary = classification_dataset(train, tokenizer, 8, 2)
    assert vocabulary == ["neg", "pos"]
    with pytest.raises(ValueError, match=r"dev.tsv, line 3: label 'neutral' was never seen in training"):
        classification_dataset(dev, tokenizer, 8, 2, label_vocabulary=vocabulary)


def test_label_vocabulary_sorts_integers_numerically():
    assert build_label_vocabulary(["10", "2", "1"]) == ["1", "2", "10"]
    assert build_label_vocabulary(["World", "Sports", "Business"]) == ["Business", "Sports", "World"]


def test_packs_text_and_pair(tmp_path):
    tokenizer = TinyWordPiece(["a", "b", "c", "d"])
    path = write(tmp_path / "pairs.tsv", "premise\thypothesis\tlabel\na b\tc\t1\nd\td d d d d\t0\n")
    dataset, vocabulary = classification_dataset(
        path, tokenizer, sequence_length=6, batch_size=2, text_column="premise", pair_column="hypothesis",
        shuffle_buffer=0,
    )
    features, labels = next(iter(dataset))
    np.testing.assert_array_equal(features["token_ids"][0], [2, 4, 5, 3, 6, 3])  # [CLS] a b [SEP] c [SEP]
    np.testing.assert_array_equal(features["segment_ids"][0], [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(features["padding_mask"][0], [1, 1, 1, 1, 1, 1])
    assert features["token_ids"].shape == (2, 6)  # the long pair was truncated
    np.testing.assert_array_equal(labels, [1, 0])
    assert vocabulary == ["0", "1"]


def test_padding_mask_marks_padding(tmp_path):
    tokenizer = TinyWordPiece(["a"])
    path = write(tmp_path / "t.tsv", "sentence\tlabel\na\t0\n")
    features, _ = next(iter(classification_dataset(path, tokenizer, 5, 1)[0]))
    np.testing.assert_array_equal(features["token_ids"][0], [2, 4, 3, 0, 0])
    np.testing.assert_array_equal(features["padding_mask"][0], [1, 1, 1, 0, 0])


def test_reads_the_shipped_reviews():
    examples = read_classification_file(REVIEWS)
    assert len(examples.texts) == len(examples.labels) == 128 and examples.pairs is None
    assert examples.texts[0] == "The concert is a mess that I would not recommend to anyone."
    assert examples.labels[0] == "negative" and examples.line_numbers[:2] == [2, 3]
    assert sorted(set(examples.labels)) == ["negative", "positive"]
    assert not any("\t" in text for text in examples.texts)


@pytest.mark.slow  # a real data set's quoting: the developers' SST-2 copy
def test_sst2_reads():
    examples = read_classification_file(shared_data("sst2/dev.tsv"))
    assert len(examples.texts) == 6735 and set(examples.labels) == {"0", "1"}


# ----------------------------------------------------------------- headers and byte-order marks


def write_bytes(path, data):
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    "name, text, header",
    [
        ("text.tsv", "text\tlabel\ngood movie\t1\nbad film\t0\n", ["text", "label"]),
        ("review.csv", "review,label\ngood movie,1\nbad film,0\n", ["review", "label"]),
        ("bom.tsv", "\ufeffsentence\tlabel\ngood movie\t1\nbad film\t0\n", ["sentence", "label"]),
        ("bom-text.tsv", "\ufefftext\tlabel\ngood movie\t1\nbad film\t0\n", ["text", "label"]),
        ("Label.tsv", "Text\tLabel\ngood movie\t1\nbad film\t0\n", ["Text", "Label"]),
    ],
)
def test_a_header_never_becomes_an_example(tmp_path, name, text, header):
    examples = read_classification_file(write(tmp_path / name, text))
    assert examples.texts == ["good movie", "bad film"] and examples.labels == ["1", "0"]
    assert examples.line_numbers == [2, 3] and examples.header == header


def test_a_header_row_names_the_columns_in_any_order(tmp_path):
    path = write(tmp_path / "t.tsv", "id\tlabel\tsentence\n7\tpos\tgood\n8\tneg\tbad\n")
    examples = read_classification_file(path)
    assert examples.texts == ["good", "bad"] and examples.labels == ["pos", "neg"]


def test_a_header_naming_other_columns_is_recognised_by_its_label_cell(tmp_path):
    # Every other label is an integer: "sentiment" is a column name, not a class.
    path = write(tmp_path / "t.tsv", "review\tsentiment\n" + "good\t1\nbad\t0\n" * 3)
    with pytest.raises(ValueError, match=r"t.tsv, line 1: .*header.*has_header=True.*text_column"):
        read_classification_file(path)
    assert read_classification_file(path, has_header=True).texts == ["good", "bad"] * 3
    assert read_classification_file(path, text_column="review", label_column="sentiment").labels == ["1", "0"] * 3


def test_a_first_row_whose_label_is_seen_again_is_an_example(tmp_path):
    path = write(tmp_path / "agnews.tsv", "stocks fall\tBusiness\nteam wins\tSports\nbanks rise\tBusiness\n")
    examples = read_classification_file(path)
    assert examples.texts == ["stocks fall", "team wins", "banks rise"] and examples.header is None


def test_an_undecidable_first_row_fails_loudly(tmp_path):
    path = write(tmp_path / "t.tsv", "a\tx\nb\ty\nc\tz\n")
    with pytest.raises(ValueError, match=r"t.tsv, line 1: .*has_header=True.*has_header=False.*--no-header"):
        read_classification_file(path)
    assert read_classification_file(path, has_header=False).texts == ["a", "b", "c"]
    assert read_classification_file(path, has_header=True).texts == ["b", "c"]


def test_byte_order_mark_is_dropped_from_every_format(tmp_path):
    bom = "\ufeff".encode("utf-8")
    jsonl = write_bytes(tmp_path / "b.jsonl", bom + b'{"sentence": "a", "label": 1}\n')
    assert read_classification_file(jsonl).texts == ["a"]
    csv_path = write_bytes(tmp_path / "b.csv", bom + b"first,x\nsecond,x\n")
    assert read_classification_file(csv_path).texts == ["first", "second"]


def test_a_repeated_header_is_an_error(tmp_path):
    path = write(tmp_path / "cat.tsv", "sentence\tlabel\ngood\t1\nsentence\tlabel\nbad\t0\n")
    with pytest.raises(ValueError, match=r"cat.tsv, line 3: .*repeats the header"):
        read_classification_file(path)


def test_a_row_with_more_cells_than_columns_is_an_error(tmp_path):
    # A tab inside a TSV text would otherwise shift the label silently.
    path = write(tmp_path / "tab.tsv", "good movie\t1\nbad\tfilm\t0\n")
    with pytest.raises(ValueError, match=r"tab.tsv, line 2: 3 cells"):
        read_classification_file(path, has_header=False)
    path = write(tmp_path / "tab2.tsv", "sentence\tlabel\ngood movie\t1\nbad\tfilm\t0\n")
    with pytest.raises(ValueError, match=r"tab2.tsv, line 3: 3 cells"):
        read_classification_file(path)


def test_a_multi_line_csv_record_is_numbered_by_its_first_line(tmp_path):
    path = write(tmp_path / "m.csv", 'sentence,label\n"two\nlines",1\n"three\n\nlines"\n')
    with pytest.raises(ValueError, match=r"m.csv, line 4: the row has no label"):
        read_classification_file(path)


# ----------------------------------------------------------------- bad bytes, fields and values


@pytest.mark.parametrize(
    "name, data, line",
    [
        ("c.tsv", b"sentence\tlabel\ngood\t1\nba\xffd\t0\n", 3),
        ("c.csv", b"sentence,label\r\ngood,1\r\n\r\nba\xffd,0\r\n", 4),
        ("c.jsonl", b'{"sentence": "a", "label": 1}\n{"sentence": "\xff", "label": 1}\n', 2),
        ("utf16.tsv", "sentence\tlabel\n".encode("utf-16"), 1),
    ],
)
def test_a_byte_that_is_not_utf8_names_file_and_line(tmp_path, name, data, line):
    path = write_bytes(tmp_path / name, data)
    with pytest.raises(ValueError, match=rf"{name}, line {line}.*not UTF-8"):
        read_classification_file(path)


def test_a_field_over_the_csv_limit_names_file_and_line(tmp_path):
    path = write(tmp_path / "big.csv", 'sentence,label\ngood,1\n"' + "x" * 200_000 + '",1\n')
    with pytest.raises(ValueError, match=r"big.csv, line 3: .*field.*131072"):
        read_classification_file(path)
    # An unclosed quote swallows the rest of the file: the same error, at the quote's line.
    path = write(tmp_path / "quote.csv", 'sentence,label\n"good,1\n' + "more text,0\n" * 20_000)
    with pytest.raises(ValueError, match=r"quote.csv, line 2: .*field"):
        read_classification_file(path)


def test_jsonl_rows_must_be_objects_with_string_texts(tmp_path):
    path = write(tmp_path / "list.jsonl", '{"sentence": "a", "label": 1}\n["a", 1]\n')
    with pytest.raises(ValueError, match=r"list.jsonl, line 2: .*JSON object.*list"):
        read_classification_file(path)
    path = write(tmp_path / "number.jsonl", '{"sentence": "a", "label": 1}\n{"sentence": 5, "label": 1}\n')
    with pytest.raises(ValueError, match=r"number.jsonl, line 2: column 'sentence' .*string.*5"):
        read_classification_file(path)
    path = write(tmp_path / "pair.jsonl", '{"premise": "a", "hypothesis": null, "label": 1}\n')
    with pytest.raises(ValueError, match=r"pair.jsonl, line 1: no text pair in column 'hypothesis'"):
        read_classification_file(path, text_column="premise", pair_column="hypothesis")
    path = write(tmp_path / "nested.jsonl", '{"sentence": "a", "label": {"x": 1}}\n')
    with pytest.raises(ValueError, match=r"nested.jsonl, line 1: column 'label' .*\{'x': 1\}"):
        read_classification_file(path)
    path = write(tmp_path / "numbers.jsonl", '{"sentence": "a", "label": 1}\n{"sentence": "b", "label": "0"}\n')
    assert read_classification_file(path).labels == ["1", "0"]  # numeric labels are fine


def test_malformed_integer_labels_name_file_and_line(tmp_path):
    tokenizer = TinyWordPiece(["good", "bad"])
    path = write(tmp_path / "signs.tsv", "sentence\tlabel\ngood\t-1\nbad\t1\nbad\t--1\n")
    with pytest.raises(ValueError, match=r"signs.tsv, line 4: label '--1' is not an integer"):
        classification_dataset(path, tokenizer, 8, 2)
    path = write(tmp_path / "zeros.tsv", "sentence\tlabel\ngood\t1\nbad\t0\nbad\t01\n")
    with pytest.raises(ValueError, match=r"zeros.tsv, line 4: label '01' .*same integer as '1'"):
        classification_dataset(path, tokenizer, 8, 2)


def test_label_vocabulary_rejects_malformed_integers_and_breaks_ties():
    with pytest.raises(ValueError, match=r"'--1' is not an integer"):
        build_label_vocabulary(["--1", "1", "-1"])
    assert build_label_vocabulary(["--1", "x"]) == ["--1", "x"]  # names, not numbers
    assert build_label_vocabulary(["10", "-2", "+3"]) == ["-2", "+3", "10"]
    assert build_label_vocabulary(["٣", "1"]) == ["1", "٣"]  # only ASCII digits make a number


# ----------------------------------------------------------------- examples/finetune_classifier.py


def finetune_classifier():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "finetune_classifier.py")
    spec = importlib.util.spec_from_file_location("finetune_classifier", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hold_out(tmp_path, name, text, *flags):
    """The example's train and validation lines, split from `text`; it stops at the missing --init-from."""
    data, output_dir = write(tmp_path / name, text), tmp_path / name.replace(".", "-")
    with pytest.raises(ValueError, match="--init-from"):
        finetune_classifier().main(
            ["--data", data, "--output-dir", str(output_dir), "--init-from", str(tmp_path / "none"), *flags]
        )
    extension = os.path.splitext(name)[1]
    parts = [output_dir / "data" / f"{part}{extension}" for part in ("train", "validation")]
    return [part.read_text(encoding="utf-8") for part in parts]


def test_finetune_classifier_takes_header_flags_for_reading_and_holding_out(tmp_path):
    lines = [f"text {i}\t{i}\n" for i in range(20)]  # every label differs: the reader cannot tell
    numbered = write(tmp_path / "numbered.tsv", "".join(lines))
    with pytest.raises(ValueError, match="numbered.tsv, line 1: .*--has-header / --no-header"):
        finetune_classifier().main(["--data", numbered, "--output-dir", str(tmp_path)])
    train, validation = hold_out(tmp_path, "numbered.tsv", "".join(lines), "--no-header")
    assert train == "".join(lines[:18]) and validation == "".join(lines[18:])
    sentiment = "review\tsentiment\n" + "good\t1\nbad\t0\n" * 10
    train, validation = hold_out(tmp_path, "sentiment.tsv", sentiment, "--has-header")
    assert train.startswith("review\tsentiment\ngood\t1\n") and validation == "review\tsentiment\ngood\t1\nbad\t0\n"


def test_finetune_classifier_holds_out_jsonl_without_a_header_line(tmp_path):
    # JSONL has no header: its first line, blank here, is not copied into both files.
    rows = "\n" + "".join(f'{{"sentence": "text {i}", "label": {i % 2}}}\n' for i in range(10))
    train, validation = hold_out(tmp_path, "rows.jsonl", rows)
    assert train + validation == rows
