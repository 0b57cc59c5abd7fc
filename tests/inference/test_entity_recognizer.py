"""EntityRecognizer: windows over long texts, IOB2 decoding equal to seqeval's, offsets into raw text."""

import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfllm.evaluation import entities as reference_entities
from tfllm.inference import EntityRecognizer, sliding_windows
from tfllm.inference.token_classification import viterbi_decode
from tfllm.tokenizers import WordPieceTokenizer

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "new", "york", "paris", "ann", "##a", "lee", "in", "."]
# The tag each token id stands for in the lookup model below.
TOKEN_TAGS = {"new": "B-LOC", "york": "I-LOC", "paris": "B-LOC", "ann": "B-PER", "##a": "I-PER", "lee": "I-PER"}


def lookup_model(sequence_length, context=False):
    """A 'token classifier' whose logits are a fixed table lookup of each token id, so the
    right entities are known. With `context`, each logit also gets a little of the position,
    so windows that see a token at different places disagree slightly."""
    table = np.full((len(VOCABULARY), len(LABELS)), -4.0, "float32")
    for index, token in enumerate(VOCABULARY):
        table[index, LABELS.index(TOKEN_TAGS.get(token, "O"))] = 4.0
    inputs = {name: keras.Input((None,), dtype="int32", name=name) for name in ("token_ids", "segment_ids", "padding_mask")}
    logits = keras.layers.Embedding(len(VOCABULARY), len(LABELS), weights=[table], name="lookup")(inputs["token_ids"])
    if context:
        logits = keras.layers.Lambda(
            lambda x: x + 0.01 * tf.cast(tf.range(tf.shape(x)[1]), x.dtype)[None, :, None], output_shape=lambda shape: shape
        )(logits)
    return keras.Model(inputs, logits)


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer(VOCABULARY, lowercase=True, strip_accents=True)


def test_sliding_windows_cover_every_token_once_at_least():
    rows, starts, sizes = (t.numpy().tolist() for t in sliding_windows(tf.constant([0, 3, 4, 9], tf.int64), 4, 3))
    assert rows == [0, 1, 2, 3, 3, 3]
    assert starts == [0, 0, 0, 0, 3, 5] and sizes == [0, 3, 4, 4, 4, 4]


def test_spans_decode_iob2_as_seqeval_does(tokenizer):
    recognizer = EntityRecognizer(lookup_model(8), tokenizer, LABELS, 8)
    rng = random.Random(0)
    sentences = [[rng.choice(LABELS) for _ in range(rng.randint(0, 12))] for _ in range(300)]
    ids = tf.ragged.constant([[LABELS.index(tag) for tag in tags] for tags in sentences], dtype=tf.int32, row_splits_dtype=tf.int64)
    probabilities = tf.ragged.constant([[0.5] * len(tags) for tags in sentences], dtype=tf.float32, row_splits_dtype=tf.int64)
    spans = recognizer.spans(ids, probabilities)
    names = recognizer.entity_types
    for tags, types, firsts, lasts in zip(
        sentences, spans["type"].to_list(), spans["first_word"].to_list(), spans["last_word"].to_list()
    ):
        decoded = [(names[kind - 1], first, last) for kind, first, last in zip(types, firsts, lasts)]
        assert decoded == [(kind, start, end - 1) for kind, start, end in reference_entities(tags)], tags


def test_entities_with_offsets_in_the_raw_text(tokenizer):
    recognizer = EntityRecognizer(lookup_model(8), tokenizer, LABELS, 8)
    texts = ["Anna Lee lives in New York.", "", "  PARIS", "\xe9t\xe9 in Paris", "new"]
    out = {name: value.numpy().tolist() for name, value in recognizer.entities(tf.constant(texts)).items()}
    assert out["entity_texts"][0] == [b"Anna Lee", b"New York"]
    assert out["entity_types"][0] == [b"PER", b"LOC"]
    assert out["entity_starts"][0] == [0, 18] and out["entity_ends"][0] == [8, 26]
    assert out["entity_texts"][1] == [b"", b""] and out["entity_starts"][1] == [-1, -1]
    assert out["entity_texts"][2][0] == b"PARIS" and out["entity_starts"][2][0] == 2
    # Offsets count characters, not bytes.
    assert out["entity_texts"][3][0] == b"Paris" and out["entity_starts"][3][0] == 7
    assert out["entity_texts"][4][0] == b"new" and out["entity_scores"][4][0] > 0.99
    assert out["entity_scores"][1] == [-1.0, -1.0]


def test_long_texts_are_read_whole_in_windows(tokenizer):
    recognizer = EntityRecognizer(lookup_model(6, context=True), tokenizer, LABELS, 6, stride=2)
    text = " . ".join(["Anna Lee in New York"] * 30)
    out = recognizer.entities(tf.constant([text, "in Paris"]))
    assert out["entity_texts"].shape == (2, 60)
    assert out["entity_texts"].numpy()[0].tolist() == [b"Anna Lee", b"New York"] * 30
    starts = out["entity_starts"].numpy()[0]
    assert [text[s:e] for s, e in zip(starts, out["entity_ends"].numpy()[0])] == ["Anna Lee", "New York"] * 30
    assert out["entity_texts"].numpy()[1].tolist()[:2] == [b"Paris", b""]


def test_an_empty_batch_and_invalid_utf8(tokenizer):
    recognizer = EntityRecognizer(lookup_model(8), tokenizer, LABELS, 8)
    out = recognizer.entities(tf.constant([], tf.string))
    assert all(value.shape == (0, 0) for value in out.values())
    out = recognizer.entities(tf.constant([b"\xff paris"]))
    assert out["entity_texts"].numpy().tolist() == [[b"paris"]] and out["entity_starts"].numpy().tolist() == [[2]]


def test_predict_tags_tags_each_word_by_its_first_piece(tokenizer):
    recognizer = EntityRecognizer(lookup_model(8), tokenizer, LABELS, 8)
    sentences = [["Anna", "Lee", "in", "New", "York", "."], [], ["unknownword"] * 20]
    assert recognizer.predict_tags(sentences, batch_size=2) == [
        ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"],
        [],
        ["O"] * 20,
    ]


def test_viterbi_decode_finds_the_best_allowed_sequence():
    # Every sequence of up to 5 tags over 3 tags, some transitions forbidden: brute force agrees.
    rng = np.random.default_rng(0)
    transitions = rng.normal(size=(3, 3)).astype("float32")
    transitions[0, 2] = transitions[2, 1] = -1e9
    first = np.array([0.0, 0.5, -1e9], "float32")
    scores = rng.normal(size=(40, 5, 3)).astype("float32")
    lengths = rng.integers(0, 6, size=40)
    decoded = viterbi_decode(scores, lengths, transitions, first).numpy()
    for row, length in enumerate(lengths):

        def total(tags):
            return first[tags[0]] + sum(scores[row, t, tag] for t, tag in enumerate(tags)) + sum(
                transitions[a, b] for a, b in zip(tags, tags[1:])
            )

        if length:
            best = max(np.ndindex(*[3] * length), key=total)
            assert tuple(decoded[row, :length]) == best, (row, length)
    assert viterbi_decode(np.zeros((2, 0, 3)), [0, 0], transitions, first).shape == (2, 0)


def test_constrained_tags_are_valid_iob2_and_keep_names_whole(tokenizer):
    # Each word's best tag alone reads "ann lee" as I-PER I-PER (an entity cut from its B-);
    # the best valid sequence is B-PER I-PER.
    table = np.full((len(VOCABULARY), len(LABELS)), -4.0, "float32")
    table[VOCABULARY.index("ann"), [LABELS.index("I-PER"), LABELS.index("B-PER")]] = [3.0, 2.5]
    table[VOCABULARY.index("lee"), LABELS.index("I-PER")] = 4.0
    table[VOCABULARY.index("in"), LABELS.index("O")] = 4.0
    inputs = {name: keras.Input((None,), dtype="int32", name=name) for name in ("token_ids", "segment_ids", "padding_mask")}
    logits = keras.layers.Embedding(len(VOCABULARY), len(LABELS), weights=[table])(inputs["token_ids"])
    model = keras.Model(inputs, logits)
    sentence = [["in", "ann", "lee"]]
    assert EntityRecognizer(model, tokenizer, LABELS, 8).predict_tags(sentence) == [["O", "B-PER", "I-PER"]]
    assert EntityRecognizer(model, tokenizer, LABELS, 8, constrained=False).predict_tags(sentence) == [
        ["O", "I-PER", "I-PER"]
    ]
    out = EntityRecognizer(model, tokenizer, LABELS, 8).entities(tf.constant(["in ann lee", ""]))
    assert out["entity_texts"].numpy().tolist() == [[b"ann lee"], [b""]]
    # The score is the mean probability of the chosen tags, B-PER's included.
    probabilities = tf.nn.softmax(table[[VOCABULARY.index("ann"), VOCABULARY.index("lee")]]).numpy()
    expected = (probabilities[0, LABELS.index("B-PER")] + probabilities[1, LABELS.index("I-PER")]) / 2
    np.testing.assert_allclose(out["entity_scores"].numpy()[0, 0], expected, rtol=1e-5)


def test_bad_arguments(tokenizer):
    with pytest.raises(ValueError, match="5 classes but 3 labels"):
        EntityRecognizer(lookup_model(8), tokenizer, ["O", "B-X", "I-X"], 8)
    with pytest.raises(ValueError, match="IOB2"):
        EntityRecognizer(lookup_model(8), tokenizer, ["O", "B-LOC", "LOC", "B-PER", "I-PER"], 8)
    with pytest.raises(ValueError, match="stride"):
        EntityRecognizer(lookup_model(8), tokenizer, LABELS, 8, stride=7)
    with pytest.raises(ValueError, match="sequence_length"):
        EntityRecognizer(lookup_model(8), tokenizer, LABELS, 2)
