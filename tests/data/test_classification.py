import json

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
    examples = read_classification_file(path)
    assert examples.labels == ["Business", "Sports"]


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
