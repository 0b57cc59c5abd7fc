"""`sparse_cross_entropy` / `SparseCrossEntropy`: Keras's values, the softmax-minus-one-hot gradient."""

import keras
import numpy as np
import pytest
from keras import ops

import tfllm
from tfllm.training import SparseCrossEntropy, sparse_cross_entropy

NUM_CLASSES = 13


def random_case(shape=(3, 7), seed=0):
    rng = np.random.default_rng(seed)
    logits = (3 * rng.standard_normal((*shape, NUM_CLASSES))).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, size=shape).astype("int32")
    return labels, logits


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def gradient(function, logits):
    """d sum(function(logits) * weights) / d logits, on the current backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        logits = tf.convert_to_tensor(logits)
        with tf.GradientTape() as tape:
            tape.watch(logits)
            total = tf.reduce_sum(function(logits))
        return to_numpy(tape.gradient(total, logits))
    if backend == "jax":
        import jax

        return to_numpy(jax.grad(lambda x: function(x).sum())(logits))
    pytest.skip(f"no gradient helper for the {backend} backend")


def reference_gradient(labels, logits, weights):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    softmax = shifted / shifted.sum(axis=-1, keepdims=True)
    return (softmax - np.eye(NUM_CLASSES, dtype="float32")[labels]) * weights[..., None]


@pytest.mark.parametrize("trailing_axis", [False, True])
def test_values_are_keras_sparse_categorical_crossentropy(trailing_axis):
    labels, logits = random_case()
    expected = to_numpy(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    given = labels[..., None] if trailing_axis else labels
    losses = to_numpy(sparse_cross_entropy(given, logits))
    assert losses.shape == labels.shape and losses.dtype == np.float32
    np.testing.assert_allclose(losses, expected, rtol=1e-5, atol=1e-6)


def test_gradient_is_softmax_minus_one_hot():
    labels, logits = random_case()
    weights = np.random.default_rng(1).uniform(0.5, 2.0, size=labels.shape).astype("float32")
    ours = gradient(lambda x: sparse_cross_entropy(labels, x) * weights, logits)
    keras_gradient = gradient(
        lambda x: keras.losses.sparse_categorical_crossentropy(labels, x, from_logits=True) * weights, logits
    )
    np.testing.assert_allclose(ours, reference_gradient(labels, logits, weights), atol=1e-6)
    np.testing.assert_allclose(ours, keras_gradient, atol=1e-6)


def test_bfloat16_logits_give_float32_losses_and_bfloat16_gradients():
    labels, logits = random_case()
    low = ops.cast(logits, "bfloat16")
    losses = sparse_cross_entropy(labels, low)
    assert keras.backend.standardize_dtype(losses.dtype) == "float32"
    exact = to_numpy(sparse_cross_entropy(labels, ops.cast(low, "float32")))
    np.testing.assert_allclose(to_numpy(losses), exact, rtol=1e-6)
    grads = gradient(lambda x: sparse_cross_entropy(labels, x), low)
    assert keras.backend.standardize_dtype(grads.dtype) == "bfloat16"


@pytest.mark.parametrize("bad_label", [-1, NUM_CLASSES, 1000])
def test_a_label_outside_the_classes_gives_nan(bad_label):
    labels, logits = random_case()
    labels[1, 2] = bad_label
    losses = to_numpy(sparse_cross_entropy(labels, logits))
    assert np.isnan(losses[1, 2])
    assert np.isfinite(np.delete(losses.reshape(-1), 1 * 7 + 2)).all()


def test_labels_of_the_wrong_shape_raise():
    labels, logits = random_case()
    with pytest.raises(ValueError, match="shape of `logits` without its last axis"):
        sparse_cross_entropy(labels[:, :, None, None], logits)


@pytest.mark.parametrize(
    "reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight", None]
)
def test_loss_matches_keras_with_sample_weights(reduction):
    labels, logits = random_case()
    weights = np.random.default_rng(2).uniform(0.0, 1.0, size=labels.shape).astype("float32")
    ours = SparseCrossEntropy(reduction=reduction)(labels, logits, sample_weight=weights)
    theirs = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)(
        labels, logits, sample_weight=weights
    )
    np.testing.assert_allclose(to_numpy(ours), to_numpy(theirs), rtol=1e-5, atol=1e-6)


def test_loss_round_trips_its_config():
    loss = SparseCrossEntropy(reduction="sum", name="xent")
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, SparseCrossEntropy)
    assert again.get_config() == loss.get_config()


def test_compiled_training_follows_the_keras_loss_curve():
    """A tiny GPT trained with either loss from the same weights and batches: the same losses."""
    rng = np.random.default_rng(3)
    token_ids = rng.integers(0, 61, size=(8, 16)).astype("int32")
    features = {"token_ids": token_ids[:, :-1], "padding_mask": np.ones((8, 15), "bool")}
    labels = token_ids[:, 1:]
    histories = []
    for loss in (keras.losses.SparseCategoricalCrossentropy(from_logits=True), SparseCrossEntropy()):
        keras.utils.set_random_seed(0)
        model = tfllm.models.GPT(
            vocabulary_size=61, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
            max_sequence_length=16, dropout=0.0,
        )
        model.compile(optimizer=keras.optimizers.AdamW(1e-2), loss=loss, jit_compile=True)
        histories.append([float(model.train_on_batch(features, labels)) for _ in range(5)])
    assert histories[0][-1] < histories[0][0]  # it learns
    np.testing.assert_allclose(histories[1], histories[0], rtol=1e-4)
