"""The cached decode loop: one prefill pass over the prompts, then one `while_loop` of steps.

`decode` is the traceable core of `tfllm.generation.generate`: `keras.ops` only, so the same
function compiles with XLA (`tf.function(jit_compile=True)`, `jax.jit`) and traces into a
plain TensorFlow graph with no `Xla*` ops, which is what a TF Serving export embeds.
"""

import keras
from keras import ops

from tfllm.generation import selection
from tfllm.layers._validation import get_activation

DECODE_SAMPLERS = ("greedy", "random", "beam")


class GPTDecoder:
    """Runs a tfllm GPT model a chunk of tokens at a time, with a KV cache per block.

    The layers are found by the names `tfllm.models.GPT` gives them: `token_embedding`,
    `position_embedding`, `embeddings_add`, `transformer_block_{i}` and `final_layer_norm`.
    Dropout is skipped: decoding is inference.

    The blocks are run from their own sublayers (the computation of `TransformerBlock.call`
    for a causal pre-norm block at inference) with a cache laid out for decoding: per block,
    keys `(rows, num_heads, head_dim, length)` and values `(rows, num_heads, length,
    head_dim)`, the layouts the two attention products read without a transpose. Each
    step's keys and values are scattered in, which XLA does in place. `TransformerBlock`'s
    own cache path, one `(rows, 2, length, num_heads, head_dim)` tensor, costs XLA a
    transpose, an unstack and a re-stack of the whole cache per block per step (decoding
    with it was 1.4x slower at batch 1 and 1.7x at batch 8 in `benchmarks/generation.py`).
    Writes are scatters, never `slice_update`, so no `Xla*` op enters a graph.

    Args:
        model: a model built by `tfllm.models.GPT` (or one with the same layer names whose
            blocks are pre-norm and causal).
        xla: bool, whether the calls will be compiled by XLA (`jax.jit` included). Without
            XLA (a plain TensorFlow graph, as in a TF Serving export) a one-token step differs
            in two ways, for speed; the tokens are the same. It writes its keys and values
            into the caches with a select on a one-hot position mask made once per step,
            instead of a scatter per block whose indices cost about 25 small ops (exported
            decoding about 4% faster at batch 8). And when the batch is statically one row,
            it writes the two attention products as element-wise products and sums:
            TensorFlow's `BatchMatMulV2` costs about 67 us a call at these shapes on CPU,
            and exported decoding of one row is about 1.2x faster. With more rows the sums
            are slower than the matrix products, and under XLA neither change pays.

    Example:

    >>> decoder = GPTDecoder(tfllm.models.GPT("gpt-test"))
    >>> caches = decoder.empty_caches(rows=2, length=16)
    >>> hidden, caches = decoder(np.ones((2, 4), "int32"), caches, positions=np.zeros(2, "int32"))
    >>> decoder.logits(hidden[:, -1], decoder.output_kernel()).shape
    (2, 512)
    """

    def __init__(self, model, xla=True):
        self.xla = xla
        self.token_embedding = _get_layer(model, "token_embedding")
        self.position_embedding = _get_layer(model, "position_embedding")
        self.embeddings_add = _get_layer(model, "embeddings_add")
        self.final_layer_norm = _get_layer(model, "final_layer_norm")
        names = {layer.name for layer in model.layers}
        self.blocks = []
        while f"transformer_block_{len(self.blocks)}" in names:
            self.blocks.append(model.get_layer(f"transformer_block_{len(self.blocks)}"))
        if not self.blocks:
            raise ValueError(
                "`model` must be a tfllm GPT model (`tfllm.models.GPT`): it has no layer named "
                f"'transformer_block_0'. Received: model={model.name!r}"
            )
        for block in self.blocks:
            if not (block.normalize_first and block.causal):
                raise ValueError(
                    "Generation needs causal pre-norm transformer blocks (GPT). Received "
                    f"{block.name} with normalize_first={block.normalize_first}, causal={block.causal}"
                )
        self._activations = [get_activation(block.activation) for block in self.blocks]
        self.vocabulary_size = self.token_embedding.input_dim
        self.max_sequence_length = self.position_embedding.sequence_length

    def empty_caches(self, rows, length):
        """Per block, zero keys `(rows, num_heads, head_dim, length)` (transposed: the layout
        of the query-key product) and values `(rows, num_heads, length, head_dim)`."""
        return [
            (
                ops.zeros((rows, block.num_heads, block.head_dim, length), dtype=block.compute_dtype),
                ops.zeros((rows, block.num_heads, length, block.head_dim), dtype=block.compute_dtype),
            )
            for block in self.blocks
        ]

    def __call__(self, token_ids, caches, positions):
        """Runs `token_ids` `(rows, seq)`; row `r` at positions `positions[r] + [0, seq)`.

        Returns the last block's hidden states `(rows, seq, hidden_dim)` (before the final
        layer norm) and the updated caches.
        """
        positions = ops.cast(positions, "int32")
        x = self.token_embedding(token_ids)
        x = self.embeddings_add([x, self.position_embedding(x, start_index=positions)])
        # Made once for every block. (rows, seq): the position of every new token.
        token_positions = positions[:, None] + ops.arange(ops.shape(token_ids)[1], dtype="int32")[None, :]
        cache_positions = ops.arange(ops.shape(caches[0][1])[2], dtype="int32")
        # (rows, seq, cache_length) bool: the cache slots each new token attends to.
        causal = cache_positions[None, None, :] <= token_positions[:, :, None]
        step_mask = None
        if not self.xla and token_ids.shape[1] == 1:
            # (rows, cache_length) bool: where each row's one new token goes in the caches.
            step_mask = cache_positions[None, :] == positions[:, None]
        updated = []
        for block, activation, cache in zip(self.blocks, self._activations, caches):
            x, cache = self._block(block, activation, x, cache, token_positions, causal, step_mask)
            updated.append(cache)
        return x, updated

    def output_kernel(self):
        """The `(hidden_dim, vocabulary_size)` output projection, to be made once per call.

        The transposed token embedding (tied weights) as a tensor of its own: a step's
        logits are then a plain matrix product that reads it in order. Transposing inside
        every step instead costs XLA a strided read of the whole table (decoding is about
        1.15x slower).
        """
        embedding = self.token_embedding
        if embedding.tie_weights:
            return ops.transpose(embedding.embeddings)
        return embedding.reverse_embeddings

    def logits(self, hidden, kernel):
        """float32 next-token logits `(rows, vocabulary_size)` for hidden states `(rows, hidden_dim)`.

        `kernel` is `output_kernel()`. The same computation as the token embedding's
        `reverse=True` call.
        """
        embedding = self.token_embedding
        hidden = self.final_layer_norm(hidden)
        dtype = embedding.reverse_dtype or hidden.dtype
        logits = ops.matmul(ops.cast(hidden, dtype), ops.cast(kernel, dtype))
        if embedding.logit_soft_cap is not None:
            logits = ops.tanh(logits / embedding.logit_soft_cap) * embedding.logit_soft_cap
        return ops.cast(logits, "float32")

    def _block(self, block, activation, x, cache, token_positions, causal, step_mask):
        """`TransformerBlock.call` (pre-norm, causal, inference) reading and writing `cache`."""
        key_cache, value_cache = cache
        rows, length = ops.shape(x)[0], ops.shape(x)[1]
        heads, head_dim = block.num_heads, block.head_dim
        residual = x
        qkv = block.qkv_dense(block.attention_layer_norm(x))
        # (3, rows, heads, seq, head_dim)
        qkv = ops.transpose(ops.reshape(qkv, (rows, length, 3, heads, head_dim)), (2, 0, 3, 1, 4))
        query, key, value = qkv[0], qkv[1], qkv[2]

        if step_mask is None:
            key_cache = ops.scatter_update(
                key_cache, _cache_indices(token_positions, heads, head_dim), ops.reshape(key, (-1,))
            )
            value_cache = ops.scatter_update(
                value_cache, _cache_indices(token_positions, heads), ops.reshape(value, (-1, head_dim))
            )
        else:
            key_cache = ops.where(step_mask[:, None, None, :], ops.transpose(key, (0, 1, 3, 2)), key_cache)
            value_cache = ops.where(step_mask[:, None, :, None], value, value_cache)

        query = query * ops.cast(1.0 / head_dim**0.5, query.dtype)
        # (rows, heads, seq, cache_length), softmax taken in float32.
        # One row, one token, no XLA: see `GPTDecoder`'s `xla`.
        by_sums = step_mask is not None and x.shape[0] == 1
        if by_sums:
            scores = ops.sum(query[:, :, 0, :, None] * key_cache, axis=2)[:, :, None, :]
        else:
            scores = ops.matmul(query, key_cache)
        scores = ops.cast(scores, "float32")
        scores = ops.where(causal[:, None, :, :], scores, selection.NEGATIVE)
        # `ops.softmax` written out: on TensorFlow without XLA, `ops.softmax` runs oneDNN's
        # softmax, which costs about 0.1 ms a call at these small shapes, 5x these four ops.
        weights = ops.exp(scores - ops.max(scores, axis=-1, keepdims=True))
        probabilities = ops.cast(weights / ops.sum(weights, axis=-1, keepdims=True), block.compute_dtype)
        if by_sums:
            attended = ops.sum(probabilities[:, :, 0, :, None] * value_cache, axis=2)[:, :, None, :]
        else:
            attended = ops.matmul(probabilities, value_cache)
        # (rows, seq, heads, head_dim)
        attended = ops.transpose(attended, (0, 2, 1, 3))
        attended = ops.reshape(attended, (rows, length, heads * head_dim))
        x = block.attention_output_dense(attended) + residual

        residual = x
        x = block.feedforward_intermediate_dense(block.feedforward_layer_norm(x))
        x = block.feedforward_output_dense(activation(x)) + residual
        return x, (key_cache, value_cache)


def _cache_indices(token_positions, heads, head_dim=None):
    """Where the new keys or values go: one `(row, head, position)` per row, head and token.

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


def decode(
    model,
    token_ids,
    lengths,
    max_new_tokens,
    sampler="greedy",
    *,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    seed=0,
    num_candidates=None,
    num_beams=1,
    length_penalty=1.0,
    num_return_sequences=1,
    repetition_penalty=1.0,
    no_repeat_ngram_size=0,
    stop_token_ids=(),
    pad_token_id=0,
    xla=True,
):
    """Generates `max_new_tokens` tokens after each prompt: prefill, then one `while_loop`.

    The traceable core of `tfllm.generation.generate`, which validates the options, batches
    prompts and compiles this function. Call it directly to embed generation in your own
    graph (for example a serving signature): every option that may differ per row is a
    tensor input, so one traced graph serves every value.

    The KV cache has a fixed shape, `prompt_length + max_new_tokens` positions per block.
    The prefill runs over the (right-padded) prompts once; row `r` then writes its `t`-th
    new token at position `lengths[r] + t`, which overwrites the prefill's padding slots
    before any query can attend to them, so each row decodes exactly as it would alone.
    A row stops at its first stop token and is padded after it; the loop ends when every
    row has stopped.

    Args:
        model: a tfllm GPT model.
        token_ids: int32 `(batch, prompt_length)` prompts, right-padded.
        lengths: int32 `(batch,)` prompt lengths, each in `[1, prompt_length]`.
        max_new_tokens: int (static), the number of new tokens per row.
        sampler: `"greedy"`, `"random"` or `"beam"`.
        temperature: float32 scalar or `(batch,)`, > 0 (`"random"`).
        top_k: int32 scalar or `(batch,)`; <= 0 keeps every candidate (`"random"`).
        top_p: float32 scalar or `(batch,)` in (0, 1] (`"random"`).
        seed: int32 scalar or `(batch,)` (`"random"`). A row's samples depend only on its
            prompt, its seed and its options, never on the rest of the batch.
        num_candidates: int or None (static, `"random"`): the draw considers only the
            `num_candidates` most likely tokens, within which `top_k` and `top_p` act. `None`
            draws from the whole vocabulary and ignores `top_k` and `top_p`.
        num_beams: int (static, `"beam"`).
        length_penalty: float (static, `"beam"`): hypotheses are ranked by
            `sum_log_probs / generated_length ** length_penalty`.
        num_return_sequences: int (static): the number of rows returned per prompt (the best
            beams for `"beam"`, independent samples for `"random"`).
        repetition_penalty: float (static); 1 is off.
        no_repeat_ngram_size: int (static); 0 is off.
        stop_token_ids: tuple of ints (static).
        pad_token_id: int (static), written after a stop token and after each prompt's
            continuation.
        xla: bool (static), whether this function will be compiled by XLA; `False` for a
            plain TensorFlow graph (see `GPTDecoder`). Either way the tokens are the same.

    Returns:
        int32 `(batch * num_return_sequences, prompt_length + max_new_tokens)`: each prompt,
        then its continuation, then padding; the rows of one prompt are adjacent.

    Example:

    >>> model = tfllm.models.GPT("gpt-test")
    >>> ids = np.array([[5, 6, 7], [8, 9, 0]], "int32")
    >>> decode(model, ids, np.array([3, 2], "int32"), max_new_tokens=4).shape
    (2, 7)
    """
    if sampler not in DECODE_SAMPLERS:
        raise ValueError(f"`sampler` must be one of {DECODE_SAMPLERS}. Received: sampler={sampler!r}")
    decoder = GPTDecoder(model, xla=xla)
    token_ids = ops.cast(token_ids, "int32")
    batch_size, prompt_length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
    buffer_length = prompt_length + max_new_tokens
    if isinstance(buffer_length, int) and buffer_length > decoder.max_sequence_length:
        raise ValueError(
            f"The prompts ({prompt_length} tokens) plus `max_new_tokens` exceed the model's "
            f"max_sequence_length={decoder.max_sequence_length}. Received: max_new_tokens={max_new_tokens}"
        )
    copies = num_beams if sampler == "beam" else num_return_sequences

    def per_row(value, dtype):
        return ops.repeat(ops.broadcast_to(ops.cast(value, dtype), (batch_size,)), copies, axis=0)

    lengths = per_row(lengths, "int32")
    token_ids = ops.repeat(token_ids, copies, axis=0)
    rows = batch_size * copies
    # Each prompt, then padding, in a buffer that holds the whole output.
    positions = ops.arange(buffer_length, dtype="int32")[None, :]
    buffer = ops.pad(token_ids, ((0, 0), (0, max_new_tokens)), constant_values=pad_token_id)
    buffer = ops.where(positions < lengths[:, None], buffer, pad_token_id)

    # Prefill: every prompt position in one pass; logits only where each prompt ends.
    kernel = decoder.output_kernel()
    hidden, caches = decoder(token_ids, decoder.empty_caches(rows, buffer_length), ops.zeros((rows,), "int32"))
    hidden_dim = ops.shape(hidden)[-1]
    last = ops.arange(rows, dtype="int32") * prompt_length + lengths - 1
    logits = decoder.logits(ops.take(ops.reshape(hidden, (-1, hidden_dim)), last, axis=0), kernel)

    choose = _TokenChoice(
        sampler=sampler,
        lengths=lengths,
        vocabulary_size=decoder.vocabulary_size,
        temperature=per_row(temperature, "float32"),
        top_k=per_row(top_k, "int32"),
        top_p=per_row(top_p, "float32"),
        keys=selection.random_keys(per_row(seed, "int32"), ops.arange(rows, dtype="int32") % copies),
        num_candidates=num_candidates,
        num_beams=num_beams,
        length_penalty=length_penalty,
        repetition_penalty=repetition_penalty,
        no_repeat_ngram_size=no_repeat_ngram_size,
        stop_token_ids=tuple(stop_token_ids),
        pad_token_id=pad_token_id,
    )
    state = choose(choose.initial_state(buffer, caches), logits)

    def cond(state):
        return ops.logical_and(state["step"] < max_new_tokens, ops.logical_not(ops.all(state["done"])))

    def body(state):
        # The token chosen last step sits at position `lengths + step - 1`.
        index = lengths + state["step"] - 1
        hidden, caches = decoder(state["token"][:, None], state["caches"], index)
        return choose({**state, "caches": caches}, decoder.logits(hidden[:, 0], kernel))

    state = ops.while_loop(cond, body, state, maximum_iterations=max_new_tokens - 1)
    output = state["ids"]
    if sampler == "beam":
        output = choose.best_beams(state, num_return_sequences)
    return output


class _TokenChoice:
    """One step of selection: logits in, the loop state with the chosen token written out.

    The loop state is a dict: `ids` (the output buffer), `caches`, `step` (tokens chosen
    so far), `token` (the last one), `done`; plus `seen` (tokens present, for the
    repetition penalty) and, for beam search, `scores` (sums of log-probabilities) and
    `generated` (tokens generated before the stop token).
    """

    def __init__(
        self,
        sampler,
        lengths,
        vocabulary_size,
        temperature,
        top_k,
        top_p,
        keys,
        num_candidates,
        num_beams,
        length_penalty,
        repetition_penalty,
        no_repeat_ngram_size,
        stop_token_ids,
        pad_token_id,
    ):
        self.sampler = sampler
        self.lengths = lengths
        self.vocabulary_size = vocabulary_size
        # Per row: (rows,) tensors.
        self.temperature, self.top_k, self.top_p, self.keys = temperature, top_k, top_p, keys
        # Static.
        self.num_candidates = num_candidates
        self.num_beams = num_beams
        self.length_penalty = length_penalty
        self.repetition_penalty = repetition_penalty
        self.no_repeat_ngram_size = no_repeat_ngram_size
        self.stop_token_ids = stop_token_ids
        self.pad_token_id = pad_token_id

    def initial_state(self, buffer, caches):
        rows = ops.shape(buffer)[0]
        state = {
            "ids": buffer,
            "caches": caches,
            "step": ops.convert_to_tensor(0, "int32"),
            "token": ops.zeros((rows,), "int32"),
            "done": ops.zeros((rows,), "bool"),
        }
        if self.repetition_penalty != 1.0:
            written = ops.arange(ops.shape(buffer)[1], dtype="int32")[None, :] < self.lengths[:, None]
            state["seen"] = _token_counts(buffer, written, self.vocabulary_size) > 0
        if self.sampler == "beam":
            # Only the first copy of each prompt starts alive, so the first step's beams differ.
            first = ops.arange(rows, dtype="int32") % self.num_beams == 0
            state["scores"] = ops.where(first, 0.0, selection.NEGATIVE)
            state["generated"] = ops.zeros((rows,), "int32")
        return state

    def __call__(self, state, logits):
        length = self.lengths + state["step"]
        if self.repetition_penalty != 1.0:
            logits = selection.apply_repetition_penalty(logits, state["seen"], self.repetition_penalty)
        if self.no_repeat_ngram_size:
            logits = selection.ban_repeated_ngrams(logits, state["ids"], length, self.no_repeat_ngram_size)

        if self.sampler == "greedy":
            token = selection.argmax(logits)
        elif self.sampler == "random":
            token = selection.sample(
                logits, self.keys, state["step"], self.temperature, self.top_k, self.top_p, self.num_candidates
            )
        else:
            token, state = self._beam_step(state, logits)

        token = ops.where(state["done"], self.pad_token_id, token)
        state = dict(state)
        positions = ops.arange(ops.shape(state["ids"])[1], dtype="int32")[None, :]
        state["ids"] = ops.where(positions == length[:, None], token[:, None], state["ids"])
        if "seen" in state:
            vocabulary = ops.arange(self.vocabulary_size, dtype="int32")[None, :]
            state["seen"] = ops.logical_or(state["seen"], vocabulary == token[:, None])
        if self.stop_token_ids:
            stop = ops.convert_to_tensor(self.stop_token_ids, "int32")
            state["done"] = ops.logical_or(state["done"], ops.any(token[:, None] == stop[None, :], axis=1))
        state["token"] = token
        state["step"] = state["step"] + 1
        return state

    def _beam_step(self, state, logits):
        """Keeps the `num_beams` best continuations of each prompt's beams.

        A finished beam has one continuation, the pad token at log-probability 0, so it
        keeps its score and competes with the live beams at its final length.
        """
        rows = ops.shape(logits)[0]
        vocabulary_size = self.vocabulary_size
        log_probs = ops.log_softmax(logits, axis=-1)
        vocabulary = ops.arange(vocabulary_size, dtype="int32")[None, :]
        pad_only = ops.where(vocabulary == self.pad_token_id, 0.0, selection.NEGATIVE)
        done = state["done"][:, None]
        log_probs = ops.where(done, pad_only, log_probs)
        totals = state["scores"][:, None] + log_probs
        generated = state["generated"] + ops.where(state["done"], 0, 1)
        ranking = totals / ops.power(ops.cast(generated, "float32"), self.length_penalty)[:, None]

        # (prompts, beams * vocabulary): every continuation of a prompt's beams.
        ranking = ops.reshape(ranking, (-1, self.num_beams * vocabulary_size))
        _, best = ops.top_k(ranking, self.num_beams, sorted=True)
        parent = ops.arange(rows // self.num_beams, dtype="int32")[:, None] * self.num_beams + best // vocabulary_size
        parent = ops.reshape(parent, (-1,))
        token = ops.reshape(best % vocabulary_size, (-1,))
        scores = ops.take_along_axis(ops.reshape(totals, (-1, self.num_beams * vocabulary_size)), best, axis=1)

        step = state.pop("step")
        state = keras.tree.map_structure(lambda value: ops.take(value, parent, axis=0), state)
        state["step"] = step
        state["scores"] = ops.reshape(scores, (-1,))
        state["generated"] = ops.take(generated, parent, axis=0)
        return ops.cast(token, "int32"), state

    def best_beams(self, state, count):
        """The `count` best finished rows of each prompt, best first."""
        rows = ops.shape(state["ids"])[0]
        generated = ops.maximum(state["generated"], 1)
        ranking = state["scores"] / ops.power(ops.cast(generated, "float32"), self.length_penalty)
        _, best = ops.top_k(ops.reshape(ranking, (-1, self.num_beams)), count, sorted=True)
        chosen = ops.arange(rows // self.num_beams, dtype="int32")[:, None] * self.num_beams + best
        return ops.take(state["ids"], ops.reshape(chosen, (-1,)), axis=0)


def _token_counts(token_ids, weights, vocabulary_size):
    """`(rows, vocabulary_size)`: how often each token occurs in each row where `weights`."""
    rows = ops.shape(token_ids)[0]
    row_index = ops.broadcast_to(ops.arange(rows, dtype="int32")[:, None], ops.shape(token_ids))
    # (rows * seq, 2): the (row, token) of every position.
    indices = ops.reshape(ops.stack([row_index, token_ids], axis=-1), (-1, 2))
    return ops.scatter(indices, ops.reshape(ops.cast(weights, "float32"), (-1,)), (rows, vocabulary_size))


def _get_layer(model, name):
    for layer in model.layers:
        if layer.name == name:
            return layer
    raise ValueError(
        f"`model` must be a tfllm GPT model (`tfllm.models.GPT`): it has no layer named {name!r}. "
        f"Received: model={getattr(model, 'name', model)!r}"
    )


__all__ = ["DECODE_SAMPLERS", "GPTDecoder", "decode"]
