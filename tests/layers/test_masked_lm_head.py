import keras
import numpy as np
import pytest

from tests.helpers import run_layer_test, to_numpy
from tfllm.layers import MaskedLMHead

VOCAB, HIDDEN = 50, 16


def hidden_states(batch=2, seq=6):
    return np.random.default_rng(0).normal(size=(batch, seq, HIDDEN)).astype("float32")


MASK_POSITIONS = np.array([[0, 3, 5], [1, 1, 4]], "int32")


def test_layer_contract_untied(tmp_path):
    run_layer_test(
        MaskedLMHead,
        init_kwargs=dict(vocabulary_size=VOCAB),
        input_data={"inputs": hidden_states(), "mask_positions": MASK_POSITIONS},
        expected_output_shape=(2, 3, VOCAB),
        # transform kernel + bias, norm gamma + beta, output kernel, output bias.
        expected_num_trainable_weights=6,
        tmp_path=tmp_path,
    )


def test_predicts_only_at_mask_positions():
    head = MaskedLMHead(vocabulary_size=VOCAB)
    x = hidden_states()
    logits = to_numpy(head(x, mask_positions=MASK_POSITIONS))
    every_position = to_numpy(head(x, mask_positions=np.tile(np.arange(6, dtype="int32"), (2, 1))))
    for row in range(2):
        np.testing.assert_allclose(logits[row], every_position[row, MASK_POSITIONS[row]], atol=1e-5)


def test_tied_head_projects_through_the_embedding():
    embedding = keras.layers.ReversibleEmbedding(VOCAB, HIDDEN)
    embedding.build()
    head = MaskedLMHead(token_embedding=embedding, intermediate_activation="gelu_approximate")
    logits = to_numpy(head(hidden_states(), mask_positions=MASK_POSITIONS))
    assert head.vocabulary_size == VOCAB
    # No output kernel of its own: the embedding matrix is reused.
    own = [w for w in head.trainable_weights if w.path.startswith(head.name)]
    assert len(own) == 5
    first_masked = hidden_states()[np.arange(2), MASK_POSITIONS[:, 0]][:, None]
    transformed = head.transform_layer_norm(head.transform_dense(first_masked))
    expected = to_numpy(transformed) @ to_numpy(embedding.embeddings).T + to_numpy(head.output_bias)
    np.testing.assert_allclose(logits[:, 0], expected[:, 0], atol=1e-5)


def test_tying_survives_save_and_reload(tmp_path):
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    mask_positions = keras.Input((None,), dtype="int32", name="mask_positions")
    embedding = keras.layers.ReversibleEmbedding(VOCAB, HIDDEN, name="token_embedding")
    head = MaskedLMHead(token_embedding=embedding, name="mlm_head")
    logits = head(embedding(token_ids), mask_positions=mask_positions)
    model = keras.Model({"token_ids": token_ids, "mask_positions": mask_positions}, logits)
    path = str(tmp_path / "tied.keras")
    model.save(path)

    reloaded = keras.saving.load_model(path)
    inputs = {"token_ids": np.arange(12, dtype="int32").reshape(2, 6), "mask_positions": MASK_POSITIONS}
    np.testing.assert_allclose(to_numpy(reloaded(inputs)), to_numpy(model(inputs)), atol=1e-6)
    assert reloaded.get_layer("mlm_head").token_embedding is reloaded.get_layer("token_embedding")
    assert len(reloaded.trainable_weights) == len(model.trainable_weights)


def test_mismatched_arguments_raise():
    embedding = keras.layers.ReversibleEmbedding(VOCAB, HIDDEN)
    with pytest.raises(ValueError, match="vocabulary_size=7.*input_dim=50"):
        MaskedLMHead(vocabulary_size=7, token_embedding=embedding)
    with pytest.raises(ValueError, match="One of `vocabulary_size` or `token_embedding`"):
        MaskedLMHead()
    with pytest.raises(ValueError, match="vocabulary_size"):
        MaskedLMHead(vocabulary_size=0)
    with pytest.raises(ValueError, match="hidden size=8.*output_dim=16"):
        MaskedLMHead(token_embedding=embedding)(np.zeros((1, 4, 8), "float32"), mask_positions=np.zeros((1, 1)))
