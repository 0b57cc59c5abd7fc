"""The transformer block shared by GPT (causal, pre-norm) and BERT (bidirectional, post-norm)."""

import keras
from keras import ops

from tfllm._validation import (
    activation_function,
    check_activation,
    check_bool,
    check_positive_float,
    check_positive_int,
    check_rate,
)
from tfllm.layers.dropout import HashDropout

# Added to attention logits (kept in float32) at masked positions.
_MASK_VALUE = -1e9

# The projections a low-rank adapter can go on (`TransformerBlock.enable_lora`): the query,
# key and value parts of the fused projection each on its own, and the other three kernels.
LORA_TARGETS = ("query", "key", "value", "attention_output", "feedforward_intermediate", "feedforward_output")
_QKV = ("query", "key", "value")


@keras.saving.register_keras_serializable(package="tfllm")
class TransformerBlock(keras.layers.Layer):
    """One transformer block: multi-head self-attention and a feed-forward network.

    The block covers both families of language model in tfllm:

    - GPT-2: `normalize_first=True` (pre-norm), `causal=True`,
      `activation="gelu_approximate"`.
    - BERT: `normalize_first=False` (post-norm), `causal=False`,
      `activation="gelu"`.

    Queries, keys and values come from one fused projection (`qkv_dense`, a kernel
    of shape `(hidden_dim, 3 * num_heads * head_dim)` laid out `[query | key | value]`,
    each head-major), which is both the fastest layout and GPT-2's own; the heads'
    outputs, concatenated, go through `attention_output_dense` (a kernel of shape
    `(num_heads * head_dim, hidden_dim)`, head `h` feeding rows `h * head_dim` to
    `(h + 1) * head_dim`).

    Args:
        num_heads: int. Number of attention heads; must divide the hidden size
            unless `head_dim` is given.
        head_dim: int or None. Width of each head. `None` gives `hidden_size //
            num_heads`; an int lets `num_heads * head_dim` differ from the hidden size
            (a block whose heads were pruned: `tfllm.compression.prune`).
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
            tensors small. `None` computes the full square of scores. The result is
            the same either way.
        fused_attention: bool. Compute the attention with `keras.ops.dot_product_attention`,
            which on JAX runs cuDNN's flash attention on NVIDIA GPUs from Ampere on (float16
            or bfloat16) and Splash attention on TPUs, where they take the call (Keras falls
            back to XLA's composition otherwise): the scores never reach the device's memory.
            Elsewhere (TensorFlow, CPUs) that op computes the full square of scores, without
            `attention_block_size`'s blocks. Dropout on the attention probabilities
            needs the probabilities, so while it is active (training with a nonzero rate) the
            block computes its attention itself, and so it does with a cache. The result is
            the same either way.
        kernel_initializer: initializer for the dense kernels.
        bias_initializer: initializer for the dense biases.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`, ...).

    Low-rank adaptation: `enable_lora(rank, alpha, targets)` adds LoRA adapters (Hu et al.,
    2021) to chosen projections and freezes the block's own weights: each target's output gains
    `(x @ A) @ B * alpha / rank`, A `(input, rank)` random and B `(rank, output)` zeros, so the
    block starts out computing exactly what it did. `"query"`, `"key"` and `"value"` adapt
    those thirds of the fused projection separately. `tfllm.compression.merge_lora` folds the
    adapters into the kernels.

    Call arguments:
        inputs: float tensor `(batch, seq, hidden_dim)`.
        padding_mask: optional `(batch, seq)` tensor, nonzero for real tokens.
            Keys at padded positions are never attended to; outputs at real
            positions are therefore independent of the padding. With a cache,
            the mask covers the cache's `max_length` positions instead.
        attention_mask: optional `(batch, query_seq, key_seq)` tensor, nonzero
            where a query may attend to a key; combined with the other masks.
        cache: optional `(key_cache, value_cache)` from `empty_cache` (or a
            previous cached call) for cached decoding: keys `(batch, num_heads,
            head_dim, max_length)` and values `(batch, num_heads, max_length,
            head_dim)`, the layouts the two attention products read without a
            transpose. `inputs` are then the new tokens: their keys and values are
            written into the cache at `cache_index` (with a scatter, a core op on
            every backend; never `XlaDynamicUpdateSlice`, which TF Serving cannot
            run), and they attend to the cache. A causal block's token at position
            `p` sees slots `<= p`; a bidirectional one sees every slot written so far.
        cache_index: int or int tensor, scalar or `(batch,)`: the position of the
            first token of `inputs` in the cache (per row when a vector).
        xla: bool, with a cache only: whether the call will be compiled by XLA
            (`jax.jit` included). With `False` (a plain TensorFlow graph, as in a TF
            Serving export) a one-token call writes the cache with a select on a
            one-hot position mask rather than a scatter, and a batch statically of
            one row computes the two attention products as element-wise products
            and sums: in a plain graph both cost fewer, cheaper kernels, while under
            XLA the scatter is done in place. The result is the same either way.
        output_length: optional int. Compute the outputs of the first
            `output_length` positions only, e.g. `1` for a classifier that reads
            the `[CLS]` token of the last block: keys and values still cover the
            whole sequence, so those outputs are exactly the full call's, while
            the queries, the attention output and the feed-forward network skip
            the other positions (three quarters of the block's matmuls). Not
            with a `cache`. A value above the sequence length gives every position.
        return_attention_scores: bool. Also return the attention probabilities, float32
            `(batch, num_heads, query_seq, key_seq)` (before dropout), computed as one square of
            scores by the block itself (not by the fused op or in query blocks). Off, the call
            computes nothing for them. Not with a `cache`.
        training: bool, whether dropout is active.

    Returns:
        The block's output, same shape as `inputs` (with `output_length`, the
        first `output_length` positions); with a `cache`, the tuple
        `(output, updated_cache)`; with `return_attention_scores`, `(output, probabilities)`.

    Example:

    >>> block = TransformerBlock(num_heads=4, intermediate_dim=256, causal=True)
    >>> x = keras.random.normal((2, 10, 64))
    >>> block(x).shape
    (2, 10, 64)
    >>> cache = block.empty_cache(batch_size=2, max_length=16)
    >>> output, cache = block(x[:, :6], cache=cache, cache_index=0)  # the prompt
    >>> output, cache = block(x[:, 6:7], cache=cache, cache_index=6)  # one more token
    >>> output.shape
    (2, 1, 64)
    """

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        head_dim=None,
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
        # The argument as given (for `get_config`); `head_dim` is the width `build` settles on.
        self._head_dim = None if head_dim is None else check_positive_int("head_dim", head_dim)
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
        self.fused_attention = check_bool("fused_attention", fused_attention)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True
        self.lora_rank = None
        self.lora_alpha = None
        self.lora_targets = ()
        self._lora = {}  # target -> (A, B)

    def build(self, inputs_shape):
        hidden_dim = inputs_shape[-1]
        if hidden_dim is None:
            raise ValueError(f"The last dimension of the inputs must be known. Received shape {inputs_shape}")
        if self._head_dim is None and hidden_dim % self.num_heads:
            raise ValueError(
                f"`num_heads` must divide the hidden size (or give `head_dim`). Received: num_heads={self.num_heads}, "
                f"hidden size={hidden_dim}"
            )
        self.hidden_dim = hidden_dim
        self.head_dim = hidden_dim // self.num_heads if self._head_dim is None else self._head_dim
        # The width of the concatenated heads: the hidden size unless `head_dim` says otherwise.
        self.attention_dim = self.num_heads * self.head_dim
        dense_args = dict(
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
        )
        norm_args = dict(epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy)
        feature_shape = (None, None, hidden_dim)

        self.attention_layer_norm = keras.layers.LayerNormalization(name="attention_layer_norm", **norm_args)
        self.attention_layer_norm.build(feature_shape)
        self.qkv_dense = keras.layers.Dense(3 * self.attention_dim, name="qkv_dense", **dense_args)
        self.qkv_dense.build(feature_shape)
        self.attention_output_dense = keras.layers.Dense(hidden_dim, name="attention_output_dense", **dense_args)
        self.attention_output_dense.build((None, None, self.attention_dim))

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
        self._activation_fn = activation_function(self.activation)
        self.built = True

    def call(
        self,
        inputs,
        padding_mask=None,
        attention_mask=None,
        cache=None,
        cache_index=None,
        output_length=None,
        xla=True,
        return_attention_scores=False,
        training=None,
    ):
        x = inputs
        if return_attention_scores and cache is not None:
            raise ValueError("`return_attention_scores` cannot be combined with a `cache`.")
        if output_length is not None:
            output_length = check_positive_int("output_length", output_length)
            if cache is not None:
                raise ValueError("`output_length` cannot be combined with a `cache`.")
        residual = x if output_length is None else x[:, :output_length]
        if self.normalize_first:
            x = self.attention_layer_norm(x)
        if cache is None:
            x = self._self_attention(x, padding_mask, attention_mask, output_length, training, return_attention_scores)
            if return_attention_scores:
                x, attention_scores = x
        else:
            if cache_index is None:
                raise ValueError("`cache_index` is required when `cache` is given.")
            x, cache = self._cached_attention(x, padding_mask, attention_mask, cache, cache_index, xla, training)
        x = self.attention_output_dropout(self._project("attention_output", x), training=training)
        x = x + residual
        if not self.normalize_first:
            x = self.attention_layer_norm(x)

        residual = x
        if self.normalize_first:
            x = self.feedforward_layer_norm(x)
        x = self._activation_fn(self._project("feedforward_intermediate", x))
        x = self.feedforward_output_dropout(self._project("feedforward_output", x), training=training)
        x = x + residual
        if not self.normalize_first:
            x = self.feedforward_layer_norm(x)

        if return_attention_scores:
            return x, attention_scores
        if cache is None:
            return x
        return x, cache

    def enable_lora(self, rank, alpha=None, targets=("query", "value")):
        """Adds LoRA adapters of `rank` to the projections in `targets` (see `LORA_TARGETS`)
        and freezes the block's own weights; the adapters alone train. `alpha` (default
        `rank`) scales the update by `alpha / rank`. The adapters are float32 variables
        `lora_<target>_a` and `lora_<target>_b`.
        """
        if not self.built:
            raise ValueError(f"{self.name} must be built before LoRA can be enabled on it.")
        if self.lora_rank is not None:
            raise ValueError(f"LoRA is already enabled on {self.name} (rank {self.lora_rank}).")
        rank = check_positive_int("rank", rank)
        alpha = float(rank) if alpha is None else check_positive_float("alpha", alpha)
        targets = check_lora_targets(targets)
        quantized = [layer.name for layer in self._projections().values() if layer.quantization_mode is not None]
        if quantized:
            raise ValueError(
                f"LoRA cannot go on {self.name}: {', '.join(quantized)} are quantized "
                f"({self.qkv_dense.quantization_mode}). Enable LoRA first, merge it, then quantize."
            )
        shapes = self._lora_shapes()
        self._tracker.unlock()
        for target in targets:
            inputs, outputs = shapes[target]
            a = self.add_weight(
                name=f"lora_{target}_a", shape=(inputs, rank), initializer="he_uniform", dtype="float32"
            )
            b = self.add_weight(name=f"lora_{target}_b", shape=(rank, outputs), initializer="zeros", dtype="float32")
            self._lora[target] = (a, b)
        self._tracker.lock()
        for layer in self._sublayers():
            layer.trainable = False
        self.lora_rank, self.lora_alpha, self.lora_targets = rank, alpha, targets

    def merged_kernels(self):
        """`{kernel variable path: float32 value}` for each adapted projection: its kernel plus the adapters'
        `A @ B * alpha / rank` (the query, key and value updates in their thirds of the fused
        kernel). Nothing is changed; `tfllm.compression.merge_lora` builds the model from them."""
        if not self.lora_rank:
            raise ValueError(f"{self.name} has no LoRA adapters to merge.")
        scale = self.lora_alpha / self.lora_rank
        merged = {}
        for target, (a, b) in self._lora.items():
            kernel = (self.qkv_dense if target in _QKV else self._projections()[target]).kernel
            delta = ops.matmul(a, b) * scale
            if target in _QKV:
                index = _QKV.index(target)
                delta = ops.pad(delta, [(0, 0), (index * self.attention_dim, (2 - index) * self.attention_dim)])
            base = merged.get(kernel.path, ops.cast(kernel, "float32"))
            merged[kernel.path] = base + delta
        return merged

    def _projections(self):
        return {
            "qkv": self.qkv_dense,
            "attention_output": self.attention_output_dense,
            "feedforward_intermediate": self.feedforward_intermediate_dense,
            "feedforward_output": self.feedforward_output_dense,
        }

    def _sublayers(self):
        return [*self._projections().values(), self.attention_layer_norm, self.feedforward_layer_norm]

    def _lora_shapes(self):
        hidden, attention, intermediate = self.hidden_dim, self.attention_dim, self.intermediate_dim
        return {
            "query": (hidden, attention),
            "key": (hidden, attention),
            "value": (hidden, attention),
            "attention_output": (attention, hidden),
            "feedforward_intermediate": (hidden, intermediate),
            "feedforward_output": (intermediate, hidden),
        }

    def _lora_update(self, target, x):
        a, b = self._lora[target]
        scale = ops.cast(self.lora_alpha / self.lora_rank, x.dtype)
        return ops.matmul(ops.matmul(x, ops.cast(a, x.dtype)), ops.cast(b, x.dtype)) * scale

    def _project(self, target, x):
        """`x` through the projection `target`, plus its adapter's update when it has one."""
        y = self._projections()[target](x)
        return y + self._lora_update(target, x) if target in self._lora else y

    def _project_qkv(self, x):
        """The fused query/key/value projection, plus the adapters' updates of their thirds."""
        qkv = self.qkv_dense(x)
        if not any(target in self._lora for target in _QKV):
            return qkv
        parts = ops.split(qkv, 3, axis=-1)
        return ops.concatenate(
            [part + self._lora_update(target, x) if target in self._lora else part for part, target in zip(parts, _QKV)],
            axis=-1,
        )

    def empty_cache(self, batch_size, max_length):
        """A zero cache for `batch_size` rows of `max_length` positions: `(key_cache, value_cache)`.

        Keys are `(batch_size, num_heads, head_dim, max_length)` and values
        `(batch_size, num_heads, max_length, head_dim)`, in the compute dtype.
        """
        if not self.built:
            raise ValueError(f"{self.name} must be built (called once) before it can make a cache.")
        keys = ops.zeros((batch_size, self.num_heads, self.head_dim, max_length), dtype=self.compute_dtype)
        values = ops.zeros((batch_size, self.num_heads, max_length, self.head_dim), dtype=self.compute_dtype)
        return keys, values

    def _self_attention(self, x, padding_mask, attention_mask, output_length, training, return_probabilities=False):
        batch_size, sequence_length = ops.shape(x)[0], ops.shape(x)[1]
        # A split rather than slices of a (batch, seq, 3, heads, head_dim) view: the
        # gradient of a split is one concatenation, while each strided slice's gradient
        # writes a zero-filled copy of the whole projection.
        heads_shape = (batch_size, sequence_length, self.num_heads, self.head_dim)
        # (batch, seq, heads, head_dim) each
        query, key, value = [ops.reshape(part, heads_shape) for part in ops.split(self._project_qkv(x), 3, axis=-1)]
        if output_length is not None:
            query = query[:, :output_length]
        query_length = ops.shape(query)[1]

        fused = self.fused_attention and not return_probabilities
        fused = fused and not (training and self.attention_probs_dropout.rate > 0)
        # The fused op's own causal mask (top-left aligned) covers a square of a whole sequence.
        fused_causal = fused and self.causal and output_length is None
        mask = None
        if self.causal and not fused_causal:
            positions = ops.arange(sequence_length, dtype="int32")
            mask = positions[None, None, :] <= ops.arange(query_length, dtype="int32")[None, :, None]
        mask = self._combine_masks(mask, padding_mask, attention_mask, output_length)

        if fused:
            attended = self._fused_attend(query, key, value, mask, fused_causal)
        else:
            attended = self._blocked_attend(query, key, value, mask, training, return_probabilities)
        if return_probabilities:
            attended, probabilities = attended
            # (batch, seq, heads * head_dim) and (batch, heads, query_seq, key_seq)
            return ops.reshape(attended, (batch_size, query_length, self.attention_dim)), probabilities
        # (batch, seq, heads * head_dim)
        return ops.reshape(attended, (batch_size, query_length, self.attention_dim))

    def _cached_attention(self, x, padding_mask, attention_mask, cache, cache_index, xla, training):
        """Attention of the new tokens `x` over the cache, after writing their keys and values."""
        key_cache, value_cache = cache
        rows, length = ops.shape(x)[0], ops.shape(x)[1]
        heads, head_dim = self.num_heads, self.head_dim
        # (3, rows, heads, seq, head_dim)
        qkv = ops.transpose(ops.reshape(self._project_qkv(x), (rows, length, 3, heads, head_dim)), (2, 0, 3, 1, 4))
        query, key, value = qkv[0], qkv[1], qkv[2]

        start = ops.reshape(ops.cast(cache_index, "int32"), (-1, 1))
        # (rows, seq): the position of every new token.
        token_positions = ops.broadcast_to(start, (rows, 1)) + ops.arange(length, dtype="int32")[None, :]
        cache_positions = ops.arange(ops.shape(value_cache)[2], dtype="int32")
        one_token = not xla and x.shape[1] == 1
        key_cache = ops.cast(key_cache, key.dtype)
        value_cache = ops.cast(value_cache, value.dtype)
        if one_token:
            # (rows, cache_length): the slot each row's one new token goes to.
            slot = cache_positions[None, :] == token_positions
            key_cache = ops.where(slot[:, None, None, :], ops.transpose(key, (0, 1, 3, 2)), key_cache)
            value_cache = ops.where(slot[:, None, :, None], value, value_cache)
        else:
            key_cache = ops.scatter_update(
                key_cache, _cache_indices(token_positions, heads, head_dim), ops.reshape(key, (-1,))
            )
            value_cache = ops.scatter_update(
                value_cache, _cache_indices(token_positions, heads), ops.reshape(value, (-1, head_dim))
            )

        if self.causal:
            mask = cache_positions[None, None, :] <= token_positions[:, :, None]
        else:
            # A bidirectional block may see every cache slot written so far.
            mask = cache_positions[None, None, :] <= token_positions[:, -1:, None]
        mask = self._combine_masks(mask, padding_mask, attention_mask, None)

        query = query * ops.cast(1.0 / head_dim**0.5, query.dtype)
        # One row, one token, a plain graph: see `xla` in the class docstring.
        by_sums = one_token and x.shape[0] == 1
        # (rows, heads, seq, cache_length), softmax taken in float32.
        if by_sums:
            scores = ops.sum(query[:, :, 0, :, None] * key_cache, axis=2)[:, :, None, :]
        else:
            scores = ops.matmul(query, key_cache)
        scores = ops.where(mask[:, None, :, :], ops.cast(scores, "float32"), _MASK_VALUE)
        # The softmax written out: in a plain TensorFlow graph `ops.softmax` runs oneDNN's
        # softmax kernel, which costs several times these four ops at decoding's small shapes.
        weights = ops.exp(scores - ops.max(scores, axis=-1, keepdims=True))
        probabilities = ops.cast(weights / ops.sum(weights, axis=-1, keepdims=True), self.compute_dtype)
        probabilities = self.attention_probs_dropout(probabilities, training=training)
        if by_sums:
            attended = ops.sum(probabilities[:, :, 0, :, None] * value_cache, axis=2)[:, :, None, :]
        else:
            attended = ops.matmul(probabilities, value_cache)
        # (rows, seq, heads * head_dim)
        attended = ops.reshape(ops.transpose(attended, (0, 2, 1, 3)), (rows, length, heads * head_dim))
        return attended, (key_cache, value_cache)

    def _combine_masks(self, mask, padding_mask, attention_mask, output_length):
        """`mask` (or None) and-ed with the key padding and the attention mask: `(batch, query, key)` bool."""
        if padding_mask is not None:
            key_mask = ops.cast(padding_mask, "bool")[:, None, :]
            mask = key_mask if mask is None else ops.logical_and(mask, key_mask)
        if attention_mask is not None:
            attention_mask = ops.cast(attention_mask, "bool")
            if output_length is not None:
                attention_mask = attention_mask[:, :output_length]
            mask = attention_mask if mask is None else ops.logical_and(mask, attention_mask)
        return mask

    def _fused_attend(self, query, key, value, mask, causal):
        """`keras.ops.dot_product_attention` of `(batch, seq, heads, head_dim)` queries, keys and values."""
        if mask is not None:
            # (batch, 1, query_seq, key_seq): the full shape that cuDNN's kernel takes.
            shape = (ops.shape(query)[0], 1, ops.shape(query)[1], ops.shape(key)[1])
            mask = ops.broadcast_to(mask[:, None], shape)
        return ops.dot_product_attention(
            query, key, value, mask=mask, scale=1.0 / self.head_dim**0.5, is_causal=causal
        )

    def _blocked_attend(self, query, key, value, mask, training, return_probabilities=False):
        """The block's own attention: one square of scores, or causal blocks of queries."""
        query = query * ops.cast(1.0 / self.head_dim**0.5, query.dtype)
        blocks = None if return_probabilities else self._query_blocks(query.shape[1], key.shape[1])
        if blocks is None:
            return self._attend(query, key, value, mask, training, return_probabilities)
        # Queries [begin, end) of a causal block see keys [0, end) only.
        return ops.concatenate(
            [
                self._attend(query[:, begin:end], key[:, :end], value[:, :end], mask[:, begin:end, :end], training)
                for begin, end in blocks
            ],
            axis=1,
        )

    def _query_blocks(self, query_length, key_length):
        """`[(begin, end)]` spans of queries to attend block by block, or `None` for one square.

        Blocks apply to causal attention of a whole sequence, queries and keys alike.
        """
        block_size = self.attention_block_size
        if not self.causal or block_size is None or not isinstance(query_length, int) or query_length != key_length:
            return None
        if query_length <= block_size:
            return None
        return [(begin, min(begin + block_size, query_length)) for begin in range(0, query_length, block_size)]

    def _attend(self, query, key, value, mask, training, return_probabilities=False):
        """Scaled dot-product attention of `(batch, seq, heads, head_dim)` queries, keys and values."""
        # (batch, heads, query_seq, key_seq), softmax taken in float32.
        scores = ops.cast(ops.einsum("bqhd,bkhd->bhqk", query, key), "float32")
        if mask is not None:
            scores = ops.where(mask[:, None, :, :], scores, _MASK_VALUE)
        probabilities = ops.softmax(scores, axis=-1)
        probs = self.attention_probs_dropout(ops.cast(probabilities, self.compute_dtype), training=training)
        attended = ops.einsum("bhqk,bkhd->bqhd", probs, value)
        return (attended, probabilities) if return_probabilities else attended

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "head_dim": self._head_dim,
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


def check_lora_targets(targets):
    """`targets` as a tuple of distinct names from `LORA_TARGETS`, or a `ValueError`."""
    if isinstance(targets, str):
        targets = (targets,)
    targets = tuple(targets)
    unknown = [target for target in targets if target not in LORA_TARGETS]
    if unknown or not targets or len(set(targets)) != len(targets):
        raise ValueError(
            f"LoRA targets must be distinct names from {', '.join(LORA_TARGETS)}. Received: {list(targets)}"
        )
    return targets


def _cache_indices(token_positions, heads, head_dim=None):
    """Where new values go in a cache: one `(row, head, position)` per row, head and token.

    With `head_dim`, for the transposed key cache: one `(row, head, feature, position)` per
    element, in the order of `key.reshape(-1)` for keys `(rows, heads, seq, head_dim)`.
    """
    rows, length = ops.shape(token_positions)[0], ops.shape(token_positions)[1]
    if head_dim is None:
        shape = (rows, heads, length)
        grid = [ops.arange(rows, dtype="int32")[:, None, None], ops.arange(heads, dtype="int32")[None, :, None]]
        position = token_positions[:, None, :]
    else:
        shape = (rows, heads, length, head_dim)
        grid = [
            ops.arange(rows, dtype="int32")[:, None, None, None],
            ops.arange(heads, dtype="int32")[None, :, None, None],
            ops.arange(head_dim, dtype="int32")[None, None, None, :],
        ]
        position = token_positions[:, None, :, None]
    columns = [ops.broadcast_to(index, shape) for index in [*grid, position]]
    return ops.reshape(ops.stack(columns, axis=-1), (-1, len(columns)))
