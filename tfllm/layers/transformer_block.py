"""The transformer block shared by GPT (causal, pre-norm) and BERT (bidirectional, post-norm)."""

import keras
from keras import ops

from tfllm.layers._validation import (
    check_activation,
    check_positive_float,
    check_positive_int,
    check_rate,
    get_activation,
)
from tfllm.layers.dropout import HashDropout

# Added to attention logits (kept in float32) at masked positions.
_MASK_VALUE = -1e9


@keras.saving.register_keras_serializable(package="tfllm")
class TransformerBlock(keras.layers.Layer):
    """One transformer block: multi-head self-attention and a feed-forward network.

    The block covers both families of language model in tfllm:

    - GPT-2: `normalize_first=True` (pre-norm), `causal=True`,
      `activation="gelu_approximate"`.
    - BERT: `normalize_first=False` (post-norm), `causal=False`,
      `activation="gelu"`.

    Queries, keys and values come from one fused projection (`qkv_dense`, a kernel
    of shape `(hidden_dim, 3 * hidden_dim)` laid out `[query | key | value]`, each
    head-major), which is both the fastest layout and GPT-2's own.

    Args:
        num_heads: int. Number of attention heads; must divide the hidden size.
        intermediate_dim: int. Width of the feed-forward network's hidden layer.
        dropout: float. Dropout rate after the attention output and after the
            feed-forward network (the residual branches).
        attention_dropout: float or None. Dropout rate on the attention
            probabilities; `None` uses `dropout`.
        activation: str. Feed-forward activation: `"gelu"` (exact),
            `"gelu_approximate"` (tanh approximation, GPT-2) or any Keras
            activation name.
        layer_norm_epsilon: float. Epsilon of both layer normalizations.
        normalize_first: bool. Pre-norm (`True`) or post-norm (`False`).
        causal: bool. Whether position `t` may attend only to positions `<= t`.
        attention_block_size: int or None. Causal attention over a whole sequence
            (no cache) of a length known when traced runs in blocks of this many
            queries, each against the keys up to its last query only: that skips the
            masked upper triangle (a quarter of the attention products at 256
            tokens with blocks of 128, three eighths at 1024) and keeps the score
            tensors small. With XLA, a GPT-2 small block trained 1.28x faster
            (`python -m benchmarks.kernels`); `None` computes the full square of
            scores. The result is the same either way.
        fused_attention: bool. Compute the attention with `keras.ops.dot_product_attention`,
            which on JAX runs cuDNN's flash attention on NVIDIA GPUs from Ampere on (float16
            or bfloat16) and Splash attention on TPUs, where they take the call (Keras falls
            back to XLA's composition otherwise): the scores never reach the device's memory.
            Elsewhere (TensorFlow, CPUs) that op computes the full square of scores, without
            `attention_block_size`'s blocks. Dropout on the attention probabilities
            needs the probabilities, so while it is active (training with a nonzero rate) the
            block computes its attention itself. The result is the same either way.
        kernel_initializer: initializer for the dense kernels.
        bias_initializer: initializer for the dense biases.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`, ...).

    Call arguments:
        inputs: float tensor `(batch, seq, hidden_dim)`.
        padding_mask: optional `(batch, seq)` tensor, nonzero for real tokens.
            Keys at padded positions are never attended to; outputs at real
            positions are therefore independent of the padding. With a cache,
            the mask covers the cache's `max_length` positions instead.
        attention_mask: optional `(batch, query_seq, key_seq)` tensor, nonzero
            where a query may attend to a key; combined with the other masks.
        cache: optional `(batch, 2, max_length, num_heads, head_dim)` tensor of
            keys (`[:, 0]`) and values (`[:, 1]`) for cached decoding. `inputs`
            are then the new tokens, written into the cache at `cache_index`.
        cache_index: int or int tensor, scalar or `(batch,)`: the position of the
            first token of `inputs` in the cache (per row when a vector).
        output_length: optional int. Compute the outputs of the first
            `output_length` positions only, e.g. `1` for a classifier that reads
            the `[CLS]` token of the last block: keys and values still cover the
            whole sequence, so those outputs are exactly the full call's, while
            the queries, the attention output and the feed-forward network skip
            the other positions (three quarters of the block's matmuls). Not
            with a `cache`. A value above the sequence length gives every position.
        training: bool, whether dropout is active.

    Returns:
        The block's output, same shape as `inputs` (with `output_length`, the
        first `output_length` positions); with a `cache`, the tuple
        `(output, updated_cache)`.

    Example:

    >>> block = TransformerBlock(num_heads=4, intermediate_dim=256, causal=True)
    >>> block(keras.random.normal((2, 10, 64))).shape
    (2, 10, 64)
    """

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        dropout=0.0,
        attention_dropout=None,
        activation="gelu",
        layer_norm_epsilon=1e-5,
        normalize_first=False,
        causal=False,
        attention_block_size=128,
        fused_attention=False,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.intermediate_dim = check_positive_int("intermediate_dim", intermediate_dim)
        self.dropout = check_rate("dropout", dropout)
        self.attention_dropout = (
            None if attention_dropout is None else check_rate("attention_dropout", attention_dropout)
        )
        self.activation = check_activation(activation)
        self.layer_norm_epsilon = check_positive_float("layer_norm_epsilon", layer_norm_epsilon)
        self.normalize_first = bool(normalize_first)
        self.causal = bool(causal)
        self.attention_block_size = (
            None if attention_block_size is None else check_positive_int("attention_block_size", attention_block_size)
        )
        if not isinstance(fused_attention, bool):
            raise ValueError(f"`fused_attention` must be a bool. Received: fused_attention={fused_attention!r}")
        self.fused_attention = fused_attention
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def build(self, inputs_shape):
        hidden_dim = inputs_shape[-1]
        if hidden_dim is None:
            raise ValueError(f"The last dimension of the inputs must be known. Received shape {inputs_shape}")
        if hidden_dim % self.num_heads:
            raise ValueError(
                f"`num_heads` must divide the hidden size. Received: num_heads={self.num_heads}, "
                f"hidden size={hidden_dim}"
            )
        self.hidden_dim = hidden_dim
        self.head_dim = hidden_dim // self.num_heads
        dense_args = dict(
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
        )
        norm_args = dict(epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy)
        feature_shape = (None, None, hidden_dim)

        self.attention_layer_norm = keras.layers.LayerNormalization(name="attention_layer_norm", **norm_args)
        self.attention_layer_norm.build(feature_shape)
        self.qkv_dense = keras.layers.Dense(3 * hidden_dim, name="qkv_dense", **dense_args)
        self.qkv_dense.build(feature_shape)
        self.attention_output_dense = keras.layers.Dense(hidden_dim, name="attention_output_dense", **dense_args)
        self.attention_output_dense.build(feature_shape)

        self.feedforward_layer_norm = keras.layers.LayerNormalization(name="feedforward_layer_norm", **norm_args)
        self.feedforward_layer_norm.build(feature_shape)
        self.feedforward_intermediate_dense = keras.layers.Dense(
            self.intermediate_dim, name="feedforward_intermediate_dense", **dense_args
        )
        self.feedforward_intermediate_dense.build(feature_shape)
        self.feedforward_output_dense = keras.layers.Dense(hidden_dim, name="feedforward_output_dense", **dense_args)
        self.feedforward_output_dense.build((None, None, self.intermediate_dim))

        attention_dropout = self.dropout if self.attention_dropout is None else self.attention_dropout
        self.attention_probs_dropout = HashDropout(attention_dropout, dtype=self.dtype_policy)
        self.attention_output_dropout = HashDropout(self.dropout, dtype=self.dtype_policy)
        self.feedforward_output_dropout = HashDropout(self.dropout, dtype=self.dtype_policy)
        self._activation_fn = get_activation(self.activation)
        self.built = True

    def call(
        self,
        inputs,
        padding_mask=None,
        attention_mask=None,
        cache=None,
        cache_index=None,
        output_length=None,
        training=None,
    ):
        x = inputs
        if output_length is not None:
            output_length = check_positive_int("output_length", output_length)
            if cache is not None:
                raise ValueError("`output_length` cannot be combined with a `cache`.")
        residual = x if output_length is None else x[:, :output_length]
        if self.normalize_first:
            x = self.attention_layer_norm(x)
        x, cache = self._self_attention(x, padding_mask, attention_mask, cache, cache_index, output_length, training)
        x = self.attention_output_dropout(self.attention_output_dense(x), training=training)
        x = x + residual
        if not self.normalize_first:
            x = self.attention_layer_norm(x)

        residual = x
        if self.normalize_first:
            x = self.feedforward_layer_norm(x)
        x = self._activation_fn(self.feedforward_intermediate_dense(x))
        x = self.feedforward_output_dropout(self.feedforward_output_dense(x), training=training)
        x = x + residual
        if not self.normalize_first:
            x = self.feedforward_layer_norm(x)

        if cache is None:
            return x
        return x, cache

    def _self_attention(self, x, padding_mask, attention_mask, cache, cache_index, output_length, training):
        batch_size, sequence_length = ops.shape(x)[0], ops.shape(x)[1]
        # A split rather than slices of a (batch, seq, 3, heads, head_dim) view: the
        # gradient of a split is one concatenation, while each strided slice's gradient
        # writes a zero-filled copy of the whole projection (~15% of a training step
        # without XLA).
        heads_shape = (batch_size, sequence_length, self.num_heads, self.head_dim)
        # (batch, seq, heads, head_dim) each
        query, key, value = [ops.reshape(part, heads_shape) for part in ops.split(self.qkv_dense(x), 3, axis=-1)]
        if output_length is not None:
            query = query[:, :output_length]
        query_length = ops.shape(query)[1]

        if cache is None:
            start = ops.zeros((1,), "int32")
        else:
            if cache_index is None:
                raise ValueError("`cache_index` is required when `cache` is given.")
            start = ops.reshape(ops.cast(cache_index, "int32"), (-1,))
            cache = self._update_cache(cache, key, value, start)
            key, value = cache[:, 0], cache[:, 1]
        key_length = ops.shape(key)[1]

        fused = self.fused_attention and not (training and self.attention_probs_dropout.rate > 0)
        # The fused op's own causal mask (top-left aligned) covers a square of a whole sequence.
        fused_causal = fused and self.causal and cache is None and output_length is None

        # (batch or 1, query_seq): the absolute position of each query.
        query_positions = start[:, None] + ops.arange(query_length, dtype="int32")[None, :]
        key_positions = ops.arange(key_length, dtype="int32")
        if fused_causal:
            mask = None
        elif self.causal:
            mask = key_positions[None, None, :] <= query_positions[:, :, None]
        elif cache is not None:
            # A bidirectional block may see every cache slot written so far.
            mask = key_positions[None, None, :] < (query_positions[:, -1:, None] + 1)
        else:
            mask = None
        if padding_mask is not None:
            key_mask = ops.cast(padding_mask, "bool")[:, None, :]
            mask = key_mask if mask is None else ops.logical_and(mask, key_mask)
        if attention_mask is not None:
            attention_mask = ops.cast(attention_mask, "bool")
            if output_length is not None:
                attention_mask = attention_mask[:, :output_length]
            mask = attention_mask if mask is None else ops.logical_and(mask, attention_mask)

        if fused:
            attended = self._fused_attend(query, key, value, mask, fused_causal)
        else:
            attended = self._blocked_attend(query, key, value, mask, cache, training)
        # (batch, seq, hidden)
        return ops.reshape(attended, (batch_size, query_length, self.hidden_dim)), cache

    def _fused_attend(self, query, key, value, mask, causal):
        """`keras.ops.dot_product_attention` of `(batch, seq, heads, head_dim)` queries, keys and values."""
        if mask is not None:
            # (batch, 1, query_seq, key_seq): the full shape that cuDNN's kernel takes.
            shape = (ops.shape(query)[0], 1, ops.shape(query)[1], ops.shape(key)[1])
            mask = ops.broadcast_to(mask[:, None], shape)
        return ops.dot_product_attention(
            query, key, value, mask=mask, scale=1.0 / self.head_dim**0.5, is_causal=causal
        )

    def _blocked_attend(self, query, key, value, mask, cache, training):
        """The block's own attention: one square of scores, or causal blocks of queries."""
        query = query * ops.cast(1.0 / self.head_dim**0.5, query.dtype)
        blocks = self._query_blocks(query.shape[1], cache)
        if blocks is None:
            return self._attend(query, key, value, mask, training)
        # Queries [begin, end) of a causal block see keys [0, end) only.
        return ops.concatenate(
            [
                self._attend(query[:, begin:end], key[:, :end], value[:, :end], mask[:, begin:end, :end], training)
                for begin, end in blocks
            ],
            axis=1,
        )

    def _query_blocks(self, query_length, cache):
        """`[(begin, end)]` spans of queries to attend block by block, or `None` for one square."""
        block_size = self.attention_block_size
        if not self.causal or cache is not None or block_size is None or not isinstance(query_length, int):
            return None
        if query_length <= block_size:
            return None
        return [(begin, min(begin + block_size, query_length)) for begin in range(0, query_length, block_size)]

    def _attend(self, query, key, value, mask, training):
        """Scaled dot-product attention of `(batch, seq, heads, head_dim)` queries, keys and values."""
        # (batch, heads, query_seq, key_seq), softmax taken in float32.
        scores = ops.cast(ops.einsum("bqhd,bkhd->bhqk", query, key), "float32")
        if mask is not None:
            scores = ops.where(mask[:, None, :, :], scores, _MASK_VALUE)
        probs = ops.cast(ops.softmax(scores, axis=-1), self.compute_dtype)
        probs = self.attention_probs_dropout(probs, training=training)
        return ops.einsum("bhqk,bkhd->bqhd", probs, value)

    def _update_cache(self, cache, key, value, start):
        """Writes the new keys and values at `start` (per row) with a scatter.

        A scatter is a core op on every backend; `ops.slice_update` would become
        `XlaDynamicUpdateSlice` on TensorFlow, which TF Serving cannot run.
        """
        batch_size, new_length = ops.shape(key)[0], ops.shape(key)[1]
        positions = ops.broadcast_to(start[:, None], (batch_size, 1)) + ops.arange(new_length, dtype="int32")
        rows = ops.broadcast_to(ops.arange(batch_size, dtype="int32")[:, None], (batch_size, new_length))
        # (batch * new_seq, 2): the (row, position) of every new token.
        indices = ops.reshape(ops.stack([rows, positions], axis=-1), (-1, 2))
        flat_shape = (-1, self.num_heads, self.head_dim)
        cache = ops.cast(cache, key.dtype)
        key_cache = ops.scatter_update(cache[:, 0], indices, ops.reshape(key, flat_shape))
        value_cache = ops.scatter_update(cache[:, 1], indices, ops.reshape(value, flat_shape))
        return ops.stack([key_cache, value_cache], axis=1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
                "activation": self.activation,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "normalize_first": self.normalize_first,
                "causal": self.causal,
                "attention_block_size": self.attention_block_size,
                "fused_attention": self.fused_attention,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
