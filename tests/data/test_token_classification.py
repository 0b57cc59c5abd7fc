"""token_classification_dataset: labels on each word's first piece, long sentences kept whole."""

import numpy as np
import pytest

from tfllm.data import TaggedSentences, token_classification_dataset
from tfllm.data.token_classification import IGNORED, word_piece_labels
from tfllm.tokenizers import WordPieceTokenizer

LABELS = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "u", ".", "s", "new", "york", "is", "big", "##gest", "eu"]


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer(VOCABULARY, lowercase=True, strip_accents=True)


def test_first_piece_of_each_word_and_of_each_later_part_is_labelled(tokenizer):
    words = [["U.S.", "is", "biggest"], ["EU", "xyz"]]
    tags = [["B-LOC", "O", "O"], ["B-ORG", "O"]]
    ids, labels = word_piece_labels(tokenizer, words, tags, LABELS)
    vocabulary = tokenizer.get_vocabulary()
    assert [vocabulary[i] for i in ids[0]] == ["u", ".", "s", ".", "is", "big", "##gest"]
    # "U.S." is four words to the tokenizer: B-LOC, then I-LOC on each later part.
    assert labels[0].tolist() == [1, 2, 2, 2, 0, 0, IGNORED]
    assert [vocabulary[i] for i in ids[1]] == ["eu", "[UNK]"] and labels[1].tolist() == [3, 0]


def test_batches_hold_features_labels_and_weights(tokenizer):
    sentences = TaggedSentences([["New", "York", "is", "biggest"]] * 5, [["B-LOC", "I-LOC", "O", "O"]] * 5, [1] * 5, "x.txt", "IOB2")
    dataset = token_classification_dataset(sentences, tokenizer, LABELS, 8, batch_size=2, shuffle_buffer=0)
    batches = list(dataset)
    assert len(batches) == 3
    features, labels, weights = batches[0]
    assert features["token_ids"].shape == (2, 8)
    assert features["token_ids"][0].numpy().tolist() == [2, 8, 9, 10, 11, 12, 3, 0]
    assert features["padding_mask"][0].numpy().tolist() == [1, 1, 1, 1, 1, 1, 1, 0]
    assert labels[0].numpy().tolist() == [0, 1, 2, 0, 0, 0, 0, 0]
    assert weights[0].numpy().tolist() == [0, 1, 1, 1, 1, 0, 0, 0]


def test_long_sentences_are_cut_between_words_and_nothing_is_lost(tokenizer):
    words = [["New", "York", "is", "biggest"] * 6]
    tags = [["B-LOC", "I-LOC", "O", "O"] * 6]
    dataset = token_classification_dataset((words, tags), tokenizer, LABELS, 7, batch_size=16, shuffle_buffer=0)
    features, labels, weights = next(iter(dataset))
    ids, weights = features["token_ids"].numpy(), weights.numpy()
    assert (ids[:, 0] == 2).all() and ids.shape[1] == 7
    # Every labelled word appears once across the windows, and no window starts mid-word.
    assert int(weights.sum()) == 24
    vocabulary = tokenizer.get_vocabulary()
    assert not any(vocabulary[row[1]].startswith("##") for row in ids)


def test_buckets_pad_to_the_smallest_boundary(tokenizer):
    words = [["is"], ["New", "York", "is", "biggest", "is", "is", "is"]]
    tags = [["O"], ["B-LOC", "I-LOC", "O", "O", "O", "O", "O"]]
    dataset = token_classification_dataset((words, tags), tokenizer, LABELS, 16, batch_size=1, shuffle_buffer=0, boundaries=[4])
    assert sorted(features["token_ids"].shape[1] for features, _, _ in dataset) == [4, 16]
    with pytest.raises(ValueError, match="boundaries"):
        token_classification_dataset((words, tags), tokenizer, LABELS, 16, 1, boundaries=[20])


def test_bad_data_is_named(tokenizer):
    with pytest.raises(ValueError, match="'B-PER' is not in the label vocabulary"):
        word_piece_labels(tokenizer, [["x"]], [["B-PER"]], LABELS)
    with pytest.raises(ValueError, match="Sentence 0 has 2 words but 1 tags"):
        word_piece_labels(tokenizer, [["x", "y"]], [["O"]], LABELS)
    with pytest.raises(ValueError, match="lacks 'I-LOC'"):
        word_piece_labels(tokenizer, [["x"]], [["B-LOC"]], ["O", "B-LOC"])
    with pytest.raises(ValueError, match="No sentences"):
        token_classification_dataset(([], []), tokenizer, LABELS, 8, 2)
    with pytest.raises(ValueError, match="sequence_length"):
        token_classification_dataset(([["x"]], [["O"]]), tokenizer, LABELS, 2, 2)
