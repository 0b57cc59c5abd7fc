"""Position embeddings: learned (GPT-2, BERT) or sinusoidal (the Transformer paper)."""

import math

import keras
from keras import ops

from tfllm._validation import check_positive_int

_KINDS = ("learned", "sinusoidal")


@keras.saving.register_keras_serializable(package="tfllm")
class PositionalEmbedding(keras.layers.Layer):
    """Embeds the position of every token of a sequence.

    `kind="learned"` keeps a trainable table of `sequence_length` vectors.
    `kind="sinusoidal"` computes the fixed encoding of Vaswani et al. (2017),
    with no weights:

        PE(pos, 2i)   = sin(pos / max_wavelength^(2i / hidden_dim))
        PE(pos, 2i+1) = cos(pos / max_wavelength^(2i / hidden_dim))

    The layer is called on the token embeddings and returns position embeddings
    of the same shape, to be added to them.

    Args:
        sequence_length: int. The maximum sequence length. Longer inputs raise
            a `ValueError` wherever the length is known when the layer runs.
        kind: `"learned"` or `"sinusoidal"`.
        initializer: initializer of the learned table.
        max_wavelength: float. The sinusoidal encoding's longest wavelength
            (10000 in the paper).
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`, ...).

    Call arguments:
        inputs: `(batch, seq, hidden_dim)` tensor, usually token embeddings.
        start_index: int or int tensor, scalar or `(batch,)`: the position of
            the first token (per row when a vector). Used in cached decoding.

    Example:

    >>> tokens = keras.random.normal((2, 8, 16))
    >>> positions = PositionalEmbedding(sequence_length=32)(tokens)
    >>> positions.shape
    (2, 8, 16)
    """

    def __init__(
        self,
        sequence_length,
        kind="learned",
        initializer="glorot_uniform",
        max_wavelength=10000.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.sequence_length = check_positive_int("sequence_length", sequence_length)
        if kind not in _KINDS:
            raise ValueError(f"`kind` must be one of {_KINDS}. Received: kind={kind!r}")
        self.kind = kind
        self.initializer = keras.initializers.get(initializer)
        if max_wavelength <= 1:
            raise ValueError(f"`max_wavelength` must be greater than 1. Received: max_wavelength={max_wavelength}")
        self.max_wavelength = float(max_wavelength)

    def build(self, inputs_shape):
        hidden_dim = inputs_shape[-1]
        if hidden_dim is None:
            raise ValueError(f"The last dimension of the inputs must be known. Received shape {inputs_shape}")
        self.hidden_dim = hidden_dim
        if self.kind == "learned":
            self.embeddings = self.add_weight(
                name="embeddings",
                shape=(self.sequence_length, hidden_dim),
                initializer=self.initializer,
            )
        self.built = True

    def call(self, inputs, start_index=0):
        length = inputs.shape[1]
        if isinstance(length, int) and isinstance(start_index, int) and start_index + length > self.sequence_length:
            raise ValueError(
                f"The sequence is longer than `sequence_length`: positions {start_index} to "
                f"{start_index + length - 1} were asked for, but this layer has "
                f"sequence_length={self.sequence_length}."
            )
        batch_size, length = ops.shape(inputs)[0], ops.shape(inputs)[1]
        start = ops.reshape(ops.cast(start_index, "int32"), (-1, 1))
        # (batch or 1, seq)
        positions = start + ops.arange(length, dtype="int32")[None, :]
        if self.kind == "learned":
            embeddings = ops.take(self.embeddings, positions, axis=0)
        else:
            embeddings = self._sinusoids(positions)
        return ops.broadcast_to(ops.cast(embeddings, self.compute_dtype), (batch_size, length, self.hidden_dim))

    def _sinusoids(self, positions):
        # Frequencies are computed in float32 whatever the compute dtype.
        pair_index = ops.arange(self.hidden_dim, dtype="int32") // 2
        exponent = ops.cast(2 * pair_index, "float32") / self.hidden_dim
        inverse_wavelengths = ops.exp(-math.log(self.max_wavelength) * exponent)
        angles = ops.cast(positions, "float32")[..., None] * inverse_wavelengths
        is_even = (ops.arange(self.hidden_dim) % 2) == 0
        return ops.where(is_even, ops.sin(angles), ops.cos(angles))

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "kind": self.kind,
                "initializer": keras.initializers.serialize(self.initializer),
                "max_wavelength": self.max_wavelength,
            }
        )
        return config
