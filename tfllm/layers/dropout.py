"""Dropout with a counter-hash mask: the same regularisation, fast under XLA."""

import keras
from keras import ops

# murmur3's 32-bit finaliser: shifts and multipliers.
_FINALIZER = ((16, 0x85EBCA6B), (13, 0xC2B2AE35), (16, None))


def _uint32(value):
    return ops.convert_to_tensor(value, dtype="uint32")


def _finalize(bits):
    """murmur3's `fmix32`: a bijection of uint32 in which every input bit flips every output bit
    with probability close to 1/2."""
    for shift, multiplier in _FINALIZER:
        bits = ops.bitwise_xor(bits, ops.right_shift(bits, _uint32(shift)))
        if multiplier is not None:
            bits = ops.multiply(bits, _uint32(multiplier))
    return bits


def hash_keep_mask(shape, rate, seed):
    """A boolean mask of `shape`, each element kept with probability `1 - rate`.

    Element `i`'s 32 random bits are `fmix32(fmix32(i ^ seed[0]) + seed[1])`: a counter hash,
    like the counter-based generators (Philox, Threefry) but in a handful of integer
    element-wise ops, which XLA fuses into one loop.

    Args:
        shape: the mask's shape (ints or a shape tensor).
        rate: float in [0, 1), the probability of dropping an element.
        seed: `(2,)` uint32 tensor.
    """
    size = 1
    for dim in shape:
        size = size * dim
    index = ops.cast(ops.reshape(ops.arange(size, dtype="int32"), shape), "uint32")
    bits = _finalize(ops.add(_finalize(ops.bitwise_xor(index, seed[0])), seed[1]))
    return ops.greater_equal(bits, _uint32(min(int(rate * 2**32), 2**32 - 1)))


@keras.saving.register_keras_serializable(package="tfllm")
class HashDropout(keras.layers.Dropout):
    """`keras.layers.Dropout` whose mask comes from a counter hash instead of Philox.

    The layer drops each element with probability `rate` and scales the rest by
    `1 / (1 - rate)`, exactly as `keras.layers.Dropout`; only the random bits come from
    elsewhere. XLA's CPU backend generates Philox numbers several times slower than
    TensorFlow's kernel, and a training step of a small GPT draws tens of millions of them;
    the hash is a few integer ops that XLA fuses (`python -m benchmarks.kernels` times
    both). Without XLA it costs more than TensorFlow's kernel, which is why this is for steps
    compiled with XLA (tfllm's default for training on TensorFlow and always on JAX). Each call draws a fresh `(2,)` seed from the layer's seed
    generator, so masks differ from step to step and from layer to layer, and a fixed `seed`
    makes them reproducible. With `noise_shape`, or on backends other than TensorFlow and JAX,
    it is Keras's own dropout.

    Args:
        rate: float in [0, 1), the fraction of the inputs to drop.
        noise_shape: optional, as in `keras.layers.Dropout`.
        seed: optional int, the seed of the layer's seed generator.
        **kwargs: base layer arguments.
    """

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        if self.noise_shape is not None or keras.config.backend() not in ("tensorflow", "jax"):
            return super().call(inputs, training=training)
        seed = ops.cast(
            keras.random.randint((2,), 0, 2**31 - 1, dtype="int32", seed=self.seed_generator), "uint32"
        )
        keep = hash_keep_mask(ops.shape(inputs), self.rate, seed)
        return ops.where(keep, inputs / ops.cast(1.0 - self.rate, inputs.dtype), ops.zeros_like(inputs))
