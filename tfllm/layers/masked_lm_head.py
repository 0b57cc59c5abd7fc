"""The masked-language-model head of BERT: predicts the tokens at the masked positions."""

import keras
from keras import ops

from tfllm._validation import (
    check_activation,
    check_positive_float,
    check_positive_int,
    activation_function,
)


@keras.saving.register_keras_serializable(package="tfllm")
class MaskedLMHead(keras.layers.Layer):
    """Predicts the original tokens at `mask_positions` (BERT's MLM head).

    The hidden states at the masked positions are gathered, transformed by a
    dense layer, an activation and a layer norm, then projected to the
    vocabulary. The projection is either tied to a token embedding (BERT: the
    transposed embedding matrix plus an output bias) or a separate dense layer.

    Args:
        vocabulary_size: int or None. The vocabulary size; taken from
            `token_embedding` when that is given.
        token_embedding: optional `keras.layers.ReversibleEmbedding` whose
            matrix is reused as the output projection (tied weights).
        intermediate_activation: str. Activation of the transform (`"gelu"` for
            BERT, `"gelu_approximate"` or any Keras activation name).
        layer_norm_epsilon: float. Epsilon of the transform's layer norm.
        kernel_initializer: initializer for the dense kernels.
        bias_initializer: initializer for the biases.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`, ...).

    Call arguments:
        inputs: `(batch, seq, hidden_dim)` hidden states.
        mask_positions: int `(batch, num_masked)` positions to predict.

    Returns:
        Logits `(batch, num_masked, vocabulary_size)` in the compute dtype.

    Example:

    >>> embedding = keras.layers.ReversibleEmbedding(100, 16)
    >>> hidden = embedding(keras.ops.ones((2, 8), "int32"))
    >>> head = MaskedLMHead(token_embedding=embedding)
    >>> head(hidden, mask_positions=keras.ops.array([[1, 3], [0, 7]])).shape
    (2, 2, 100)
    """

    def __init__(
        self,
        vocabulary_size=None,
        token_embedding=None,
        intermediate_activation="gelu",
        layer_norm_epsilon=1e-12,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if token_embedding is None:
            if vocabulary_size is None:
                raise ValueError("One of `vocabulary_size` or `token_embedding` must be given.")
            check_positive_int("vocabulary_size", vocabulary_size)
        else:
            if not isinstance(token_embedding, keras.layers.ReversibleEmbedding):
                raise ValueError(
                    "`token_embedding` must be a `keras.layers.ReversibleEmbedding`. "
                    f"Received: token_embedding={token_embedding!r}"
                )
            if vocabulary_size is not None and vocabulary_size != token_embedding.input_dim:
                raise ValueError(
                    "`vocabulary_size` must equal the input dimension of `token_embedding`. "
                    f"Received: vocabulary_size={vocabulary_size}, "
                    f"token_embedding.input_dim={token_embedding.input_dim}"
                )
            vocabulary_size = token_embedding.input_dim
        self.vocabulary_size = vocabulary_size
        self.token_embedding = token_embedding
        self.intermediate_activation = check_activation(intermediate_activation)
        self.layer_norm_epsilon = check_positive_float("layer_norm_epsilon", layer_norm_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, inputs_shape, mask_positions_shape=None):
        hidden_dim = inputs_shape[-1]
        if self.token_embedding is not None and hidden_dim != self.token_embedding.output_dim:
            raise ValueError(
                "The hidden size of the inputs must equal the output dimension of `token_embedding`. "
                f"Received: hidden size={hidden_dim}, token_embedding.output_dim={self.token_embedding.output_dim}"
            )
        self.transform_dense = keras.layers.Dense(
            hidden_dim,
            activation=activation_function(self.intermediate_activation),
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
            name="transform_dense",
        )
        self.transform_dense.build((None, None, hidden_dim))
        self.transform_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="transform_layer_norm"
        )
        self.transform_layer_norm.build((None, None, hidden_dim))
        if self.token_embedding is None:
            self.output_dense = keras.layers.Dense(
                self.vocabulary_size,
                kernel_initializer=self.kernel_initializer,
                use_bias=False,
                dtype=self.dtype_policy,
                name="output_dense",
            )
            self.output_dense.build((None, None, hidden_dim))
        self.output_bias = self.add_weight(
            name="output_bias", shape=(self.vocabulary_size,), initializer=self.bias_initializer
        )
        self.built = True

    def call(self, inputs, mask_positions):
        mask_positions = ops.cast(mask_positions, "int32")
        # (batch, num_masked, hidden)
        x = ops.take_along_axis(inputs, mask_positions[:, :, None], axis=1)
        x = self.transform_layer_norm(self.transform_dense(x))
        if self.token_embedding is None:
            logits = self.output_dense(x)
        else:
            logits = self.token_embedding(x, reverse=True)
        return logits + ops.cast(self.output_bias, logits.dtype)

    def compute_output_shape(self, inputs_shape, mask_positions_shape):
        return (*mask_positions_shape, self.vocabulary_size)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("token_embedding") is not None:
            # Inside a saved model the embedding is shared with the encoder:
            # Keras' object-sharing scope hands back that same instance.
            config["token_embedding"] = keras.layers.deserialize(config["token_embedding"])
        return cls(**config)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "token_embedding": None
                if self.token_embedding is None
                else keras.layers.serialize(self.token_embedding),
                "intermediate_activation": self.intermediate_activation,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
