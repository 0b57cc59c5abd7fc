import numpy as np
import pytest

from tests.helpers import run_layer_test, to_numpy
from tfllm.layers import PositionalEmbedding


def token_embeddings(batch=2, seq=5, hidden=8):
    return np.random.default_rng(0).normal(size=(batch, seq, hidden)).astype("float32")


@pytest.mark.parametrize("kind, num_weights", [("learned", 1), ("sinusoidal", 0)])
def test_layer_contract(kind, num_weights, tmp_path):
    run_layer_test(
        PositionalEmbedding,
        init_kwargs=dict(sequence_length=16, kind=kind),
        input_data={"inputs": token_embeddings()},
        expected_output_shape=(2, 5, 8),
        expected_num_trainable_weights=num_weights,
        tmp_path=tmp_path,
    )


def test_sinusoidal_matches_the_transformer_paper():
    hidden, length = 8, 12
    layer = PositionalEmbedding(sequence_length=length, kind="sinusoidal")
    output = to_numpy(layer(token_embeddings(batch=1, seq=length, hidden=hidden)))[0]
    expected = np.zeros((length, hidden))
    for pos in range(length):
        for i in range(hidden // 2):
            expected[pos, 2 * i] = np.sin(pos / 10000 ** (2 * i / hidden))
            expected[pos, 2 * i + 1] = np.cos(pos / 10000 ** (2 * i / hidden))
    np.testing.assert_allclose(output, expected, atol=1e-5)


@pytest.mark.parametrize("kind", ["learned", "sinusoidal"])
def test_start_index_offsets_positions(kind):
    layer = PositionalEmbedding(sequence_length=16, kind=kind)
    full = to_numpy(layer(token_embeddings(seq=10)))
    np.testing.assert_allclose(to_numpy(layer(token_embeddings(seq=3), start_index=4)), full[:, 4:7], atol=1e-6)
    per_row = to_numpy(layer(token_embeddings(seq=1), start_index=np.array([2, 9])))
    np.testing.assert_allclose(per_row[:, 0], np.stack([full[0, 2], full[1, 9]]), atol=1e-6)


def test_learned_table_rows_are_returned():
    layer = PositionalEmbedding(sequence_length=16)
    output = to_numpy(layer(token_embeddings()))
    table = to_numpy(layer.embeddings)
    np.testing.assert_allclose(output[0], table[:5])
    np.testing.assert_allclose(output[1], table[:5])


@pytest.mark.parametrize("kind", ["learned", "sinusoidal"])
def test_longer_than_sequence_length_raises(kind):
    layer = PositionalEmbedding(sequence_length=4, kind=kind)
    with pytest.raises(ValueError, match="longer than `sequence_length`.*sequence_length=4"):
        layer(token_embeddings(seq=5))
    with pytest.raises(ValueError, match="positions 2 to 4"):
        layer(token_embeddings(seq=3), start_index=2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(sequence_length=0), "sequence_length"),
        (dict(sequence_length=8, kind="rotary"), "kind"),
        (dict(sequence_length=8, max_wavelength=1), "max_wavelength"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PositionalEmbedding(**kwargs)
