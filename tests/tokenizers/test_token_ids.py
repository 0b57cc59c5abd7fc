"""What `detokenize` takes as token ids, for both tokenizers: integers, and nothing it would change."""

import numpy as np
import pytest
import tensorflow as tf

from tfllm.tokenizers import BytePairTokenizer, WordPieceTokenizer
from tfllm.tokenizers._byte_level import BYTE_SYMBOLS

IDS = [72, 105, 33]  # "Hi!" in the byte vocabulary; "the qu ##ick" ... in the WordPiece one


@pytest.fixture(scope="module", params=["bpe", "wordpiece"])
def tokenizer(request):
    if request.param == "bpe":
        return BytePairTokenizer({symbol: id for id, symbol in enumerate(BYTE_SYMBOLS)}, [])
    return WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"word{i}" for i in range(200)])


@pytest.mark.parametrize(
    "ids",
    [[72, 1.5], [[72], [2.9, 3.0]], np.array([72, 0.5]), tf.constant([72, 1.25]), tf.ragged.constant([[1.0], [2.5]])],
    ids=["list", "nested lists", "numpy", "tensor", "ragged tensor"],
)
def test_float_ids_that_are_not_whole_numbers_raise(tokenizer, ids):
    with pytest.raises(ValueError, match=r"Token ids must be integers.*\d\.\d+.*not a whole number"):
        tokenizer.detokenize(ids)


@pytest.mark.parametrize("ids", [[float("nan")], [float("inf")], [2.0**70]])
def test_floats_beyond_the_integers_raise(tokenizer, ids):
    with pytest.raises(ValueError, match=r"Token ids must be integers"):
        tokenizer.detokenize(ids)


@pytest.mark.parametrize(
    "ids", [[True, 72], np.array([True]), ["72"], np.array(["72"]), tf.constant([True])], ids=str
)
def test_ids_that_are_not_numbers_raise(tokenizer, ids):
    with pytest.raises(ValueError, match=r"Token ids must be integers"):
        tokenizer.detokenize(ids)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"])
def test_every_integer_dtype_reads_the_same(tokenizer, dtype):
    expected = tokenizer.detokenize(IDS).numpy()
    assert tokenizer.detokenize(np.array(IDS, dtype)).numpy() == expected
    assert tokenizer.detokenize(tf.constant(IDS, dtype)).numpy() == expected
    assert tokenizer.detokenize(tf.ragged.constant([IDS], dtype)).numpy().tolist() == [expected]


def test_whole_floats_read_as_their_integers(tokenizer):
    expected = tokenizer.detokenize(IDS).numpy()
    assert tokenizer.detokenize([float(id) for id in IDS]).numpy() == expected
    assert tokenizer.detokenize(np.array(IDS, "float32")).numpy() == expected
    assert tokenizer.detokenize(tf.constant([IDS], tf.float64)).numpy().tolist() == [expected]


def test_ids_beyond_int64_raise_with_their_value(tokenizer):
    with pytest.raises(ValueError, match=str(2**63)):
        tokenizer.detokenize(np.array([2**63], np.uint64))
    with pytest.raises(ValueError, match=str(2**64 - 1)):
        tokenizer.detokenize(tf.constant([2**64 - 1], tf.uint64))
    with pytest.raises(ValueError, match=str(2**70)):
        tokenizer.detokenize([2**70])


def test_a_traced_function_needs_integer_ids(tokenizer):
    integers = tf.function(tokenizer.detokenize, input_signature=[tf.TensorSpec([None], tf.int32)])
    assert integers(tf.constant(IDS)).numpy() == tokenizer.detokenize(IDS).numpy()
    floats = tf.function(tokenizer.detokenize, input_signature=[tf.TensorSpec([None], tf.float32)])
    with pytest.raises(ValueError, match="integer dtype"):
        floats(tf.constant([72.0]))


def test_empty_rows_are_fine(tokenizer):
    assert tokenizer.detokenize([[], IDS]).numpy().tolist() == [b"", tokenizer.detokenize(IDS).numpy()]
    assert tokenizer.detokenize(np.zeros([0], "float32")).numpy() == b""
