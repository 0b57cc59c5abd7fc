"""QuestionWindows and QuestionAnswerer: windows over long contexts, best valid spans, offsets into raw text."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfllm.inference import QuestionAnswerer, QuestionWindows
from tfllm.tokenizers import WordPieceTokenizer

VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "where", "is", "the", "cat", "in", "paris", "rome", "new", "york", "?", ".", "##s"]
# Start and end logits of each token id in the lookup model below.
START = {"paris": 5.0, "new": 4.0, "rome": 1.0}
END = {"paris": 5.0, "york": 4.0, "rome": 1.0}


def lookup_model():
    """A 'span model' whose start and end logits are a table lookup of each token id."""
    table = np.zeros((len(VOCABULARY), 2), "float32")
    for index, token in enumerate(VOCABULARY):
        table[index] = START.get(token, -2.0), END.get(token, -2.0)
    inputs = {name: keras.Input((None,), dtype="int32", name=name) for name in ("token_ids", "segment_ids", "padding_mask")}
    logits = keras.layers.Embedding(len(VOCABULARY), 2, weights=[table])(inputs["token_ids"])
    outputs = {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer(VOCABULARY, lowercase=True, strip_accents=True)


def answers(tokenizer, questions, contexts, n_best=1, **options):
    answerer = QuestionAnswerer(lookup_model(), tokenizer, **{"sequence_length": 12, **options})
    result = answerer.answers(tf.constant(questions), tf.constant(contexts), n_best=n_best)
    return {key: value.numpy().tolist() for key, value in result.items()}


def test_windows_cover_the_whole_context_and_keep_each_pieces_word_span(tokenizer):
    windows = QuestionWindows(tokenizer, sequence_length=10, stride=2, max_question_length=3)
    context = "the cat is in the cat in the Paris ."
    result = windows(tf.constant(["where is the cat ?", ""]), tf.constant([context, "cats"]))
    token_ids = result["features"]["token_ids"].numpy()
    segments = result["features"]["segment_ids"].numpy()
    mask = result["features"]["padding_mask"].numpy()
    rows = result["rows"].numpy().tolist()
    assert token_ids.shape[1] <= 10 and rows == [0, 0, 0, 0, 1]
    covered = set()
    for window, row in enumerate(rows):
        start = result["context_start"].numpy()[window]
        real = token_ids[window][mask[window] == 1]
        assert real[0] == 2 and real[start - 1] == 3 and real[-1] == 3  # [CLS] question [SEP] context [SEP]
        assert (segments[window][:start] == 0).all() and (segments[window][start : len(real)] == 1).all()
        piece_starts = result["piece_starts"][window].numpy()
        pieces = [VOCABULARY[i] for i in real[start:-1]]
        if row == 0:
            assert start == 5  # the question cut to 3 pieces
            assert len(pieces) == 4
            for piece, begin, end in zip(pieces, piece_starts, result["piece_ends"][window].numpy()):
                assert context[begin:end].lower() == piece
                covered.add(begin)
        else:
            assert pieces == ["cat", "##s"] and piece_starts.tolist() == [0, 0]
    assert covered == {i for i, char in enumerate(context) if char != " " and (i == 0 or context[i - 1] == " ")}


def test_the_answer_in_the_last_window_of_a_long_context_with_offsets_into_the_text_as_written(tokenizer):
    context = "The cat is in the cat. " * 6 + "The cat is in PARÍS."
    result = answers(tokenizer, ["Where is the cat?"], [context])
    start = context.index("PARÍS")
    assert result["answer"] == [["PARÍS".encode()]]
    assert result["answer_start"] == [[start]] and result["answer_end"] == [[start + 5]]
    assert 0 < result["score"][0][0] <= 1


def test_spans_run_start_to_end_within_max_answer_length_and_n_best_are_distinct(tokenizer):
    context = "new york is in the cat york ."
    best = answers(tokenizer, ["where?"], [context], n_best=4)
    texts = [text.decode() for text in best["answer"][0]]
    assert texts[0] == "new york"
    assert len(set(zip(best["answer_start"][0], best["answer_end"][0]))) == 4
    assert all(0 < score <= 1 for score in best["score"][0])
    # With at most 2 pieces an answer, "new york is in the cat york" can never be one.
    short = answers(tokenizer, ["where?"], [context], n_best=50, max_answer_length=2)
    for start, end in zip(short["answer_start"][0], short["answer_end"][0]):
        if start >= 0:
            assert len(context[start:end].split()) <= 2 and start < end


def test_empty_contexts_and_batches_and_invalid_utf8_have_defined_answers(tokenizer):
    result = answers(tokenizer, ["where?", "", "where?"], ["", "paris", b"\xff paris".decode("latin-1").encode("latin-1")], n_best=2)
    assert result["answer"][0] == [b"", b""] and result["answer_start"][0] == [-1, -1] and result["score"][0] == [-1.0, -1.0]
    assert result["answer"][1][0] == b"paris"
    assert result["answer"][2][0] == b"paris" and result["answer_start"][2][0] == 2
    answerer = QuestionAnswerer(lookup_model(), tokenizer, sequence_length=12)
    empty = answerer.answers(tf.constant([], tf.string), tf.constant([], tf.string))
    assert empty["answer"].shape == (0, 1) and empty["score"].shape == (0, 1)


def test_predict_answers_in_order_through_one_compiled_function(tokenizer):
    answerer = QuestionAnswerer(lookup_model(), tokenizer, sequence_length=12)
    contexts = ["in rome .", "in paris .", "new york"] * 3
    assert answerer.predict(["where?"] * 9, contexts, batch_size=4) == ["rome", "paris", "new york"] * 3


@pytest.mark.parametrize(
    "options, message",
    [
        ({"sequence_length": 4}, "sequence_length"),
        ({"sequence_length": 12, "max_question_length": 9}, "max_question_length"),
        ({"sequence_length": 12, "stride": 9}, "stride"),
        ({"sequence_length": 12, "max_answer_length": 0}, "max_answer_length"),
    ],
)
def test_bad_options_are_refused_by_name(tokenizer, options, message):
    with pytest.raises(ValueError, match=message):
        QuestionAnswerer(lookup_model(), tokenizer, **options)


def test_a_model_without_span_outputs_is_refused(tokenizer):
    inputs = keras.Input((None,), dtype="int32", name="token_ids")
    with pytest.raises(ValueError, match="start_logits"):
        QuestionAnswerer(keras.Model(inputs, keras.layers.Embedding(20, 2)(inputs)), tokenizer, sequence_length=12)
