"""HashDropout: Keras's dropout semantics with counter-hash masks, on every backend it serves."""

import keras
import numpy as np
import pytest

from tests.helpers import to_numpy
from tfllm.layers import HashDropout

RATE = 0.1
SHAPE = (40, 50, 64)  # 128,000 values: the drop fraction's standard deviation is about 0.00084


def dropped(layer, x=None, **kwargs):
    x = np.ones(SHAPE, "float32") if x is None else x
    return to_numpy(layer(x, training=True, **kwargs)) == 0


def test_inference_and_rate_zero_pass_inputs_through():
    x = np.random.default_rng(0).normal(size=(4, 8)).astype("float32")
    np.testing.assert_array_equal(to_numpy(HashDropout(RATE)(x)), x)
    np.testing.assert_array_equal(to_numpy(HashDropout(0.0)(x, training=True)), x)


def test_drops_the_rate_and_scales_the_rest_like_keras():
    x = np.random.default_rng(1).normal(size=SHAPE).astype("float32")
    output = to_numpy(HashDropout(RATE, seed=1)(x, training=True))
    drop = output == 0
    assert abs(drop.mean() - RATE) < 0.005  # about 6 standard deviations
    np.testing.assert_allclose(output[~drop], x[~drop] / (1 - RATE), rtol=1e-6)


def test_masks_are_fresh_every_call_and_independent_between_neighbours():
    layer = HashDropout(RATE, seed=2)
    first, second = dropped(layer), dropped(layer)
    # Independent masks disagree on 2·p·(1-p) = 0.18 of the values.
    assert abs((first != second).mean() - 2 * RATE * (1 - RATE)) < 0.01
    # Neighbouring elements (consecutive counters) are dropped together with probability p².
    for axis in range(3):
        both = np.logical_and(np.take(first, range(1, SHAPE[axis]), axis), np.take(first, range(SHAPE[axis] - 1), axis))
        assert abs(both.mean() - RATE**2) < 0.004


def test_a_seed_makes_the_masks_reproducible_and_layers_differ_without_one():
    np.testing.assert_array_equal(dropped(HashDropout(RATE, seed=5)), dropped(HashDropout(RATE, seed=5)))
    assert (dropped(HashDropout(RATE)) != dropped(HashDropout(RATE))).mean() > 0.1


def test_noise_shape_keeps_keras_dropout():
    mask = dropped(HashDropout(0.5, noise_shape=(SHAPE[0], 1, SHAPE[2]), seed=3))
    assert (mask == mask[:, :1, :]).all()  # broadcast along the middle axis


def test_mixed_bfloat16_computes_in_bfloat16():
    x = keras.ops.ones((8, 16), dtype="bfloat16")
    output = HashDropout(RATE, seed=4, dtype="mixed_bfloat16")(x, training=True)
    assert keras.backend.standardize_dtype(output.dtype) == "bfloat16"


def test_config_round_trip():
    layer = HashDropout(0.2, noise_shape=(None, 1), seed=9, name="drop")
    clone = HashDropout.from_config(layer.get_config())
    assert (clone.rate, clone.noise_shape, clone.seed, clone.name) == (0.2, (None, 1), 9, "drop")


@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="XLA compilation through tf.function")
def test_same_masks_compiled_with_xla():
    import tensorflow as tf

    plain, compiled = HashDropout(RATE, seed=6), HashDropout(RATE, seed=6)
    x = tf.ones(SHAPE)
    step = tf.function(lambda inputs: compiled(inputs, training=True), jit_compile=True)
    np.testing.assert_array_equal(dropped(plain, x), step(x).numpy() == 0)
