"""The cached decode loop: one prefill pass over the prompts, then one `while_loop` of steps.

`decode` is the traceable core of `tfllm.generation.generate`: `keras.ops` only, so the same
function compiles with XLA (`tf.function(jit_compile=True)`, `jax.jit`) and traces into a
plain TensorFlow graph with no `Xla*` ops, which is what a TF Serving export embeds.
"""

import contextlib
import warnings

import keras
from keras import ops

from tfllm.generation import selection
from tfllm.generation.config import GenerationConfig
from tfllm.layers import PositionalEmbedding, ReversibleEmbedding, TransformerBlock
from tfllm.models import graph

DECODE_SAMPLERS = ("greedy", "random", "beam")


class GPTDecoder:
    """Runs a causal language model a chunk of tokens at a time, each block with its KV cache.

    The model is any Functional Keras model built from tfllm's layers: `tfllm.models.GPT`,
    or one a user composes. The decoder reads its structure, never its layer names: it runs
    the model's own graph, calling every causal `TransformerBlock` with its cache
    (`TransformerBlock.empty_cache`, the block's one cached-attention path), every
    `PositionalEmbedding` from each row's position, and everything else as the model does.
    Dropout is off: decoding is inference. Three things are done once per call instead of
    per step (`kernels`): a `ReversibleEmbedding`'s output projection reads a transposed copy
    of its table made once, the int8 kernels of a weight-only quantized model
    (`tfllm.compression.quantize`) are cast to float once, and the logits are computed at one
    position per row only. A quantized model therefore holds a float copy of its kernels
    while a call runs: its steps cost what float32 steps cost, its stored weights stay int8.

    What a model needs, checked here (a `ValueError` says what is missing):

    - an int token-id input named `token_ids` (or a single input); besides it only a
      `padding_mask` input, which decoding fills with ones;
    - at least one `TransformerBlock`, every one causal and called without
      `attention_mask` or `output_length` (the cache replaces the padding mask: a row's
      token at position `p` attends to the cache slots `<= p`);
    - one output: logits `(batch, seq, vocabulary_size)`.

    Layers between the last block and the output must act on each position alone (a layer
    norm, the output projection), as in every causal language model; the decoder takes the
    last block's output at the positions it needs logits for.

    Args:
        model: the language model.
        xla: bool, whether the calls will be compiled by XLA (`jax.jit` included); passed
            to the blocks (see `TransformerBlock`'s `xla`). The tokens are the same either way.

    Example:

    >>> decoder = GPTDecoder(tfllm.models.GPT.from_preset("gpt-test"))
    >>> caches = decoder.empty_caches(rows=2, length=16)
    >>> kernels = decoder.kernels()
    >>> logits, caches = decoder(np.ones((2, 4), "int32"), caches, np.zeros(2, "int32"), kernels)
    >>> logits.shape
    (2, 512)
    """

    def __init__(self, model, xla=True):
        self.model = model
        self.xla = xla
        operations = list(graph.operations(model))
        self.blocks = [operation for operation, _ in operations if isinstance(operation, TransformerBlock)]
        self._check(model, operations)
        self._reversed = []
        for operation, kwargs in operations:
            if isinstance(operation, ReversibleEmbedding) and kwargs.get("reverse") and operation not in self._reversed:
                self._reversed.append(operation)
        self.vocabulary_size = model.output.shape[-1]
        lengths = [op.sequence_length for op, _ in operations if isinstance(op, PositionalEmbedding)]
        self.max_sequence_length = min(lengths) if lengths else None
        # Weight-only int8 layers compute `inputs @ cast(kernel) / scale`; activation-quantized
        # ones multiply int8 by int8, which a float kernel would change, so they run as they are.
        self._int8 = [
            layer
            for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense))
            and layer.quantization_mode == "int8"
            and layer.inputs_quantizer is None
        ]

    def _check(self, model, operations):
        name = getattr(model, "name", model)
        needs = (
            "Generation needs a causal language model built from tfllm's layers (e.g. "
            "`tfllm.models.GPT`; see `tfllm.generation.GPTDecoder`)"
        )
        if not graph.is_functional(model):
            raise ValueError(f"{needs}: a Functional Keras model. Received: {type(model).__name__}")
        inputs = model.input
        if isinstance(inputs, dict):
            if "token_ids" not in inputs:
                raise ValueError(f"{needs}; model {name!r} has no input named 'token_ids'. Its inputs: {sorted(inputs)}")
            extra = sorted(set(inputs) - {"token_ids", "padding_mask"})
            if extra:
                raise ValueError(
                    f"{needs}; besides 'token_ids' and 'padding_mask', model {name!r} takes inputs {extra}, "
                    "which decoding cannot fill."
                )
        elif len(model.inputs) != 1:
            raise ValueError(f"{needs}; model {name!r} takes {len(model.inputs)} unnamed inputs (give it a dict input).")
        output = model.output
        if isinstance(output, (dict, list, tuple)) or len(output.shape) != 3 or output.shape[-1] is None:
            raise ValueError(
                f"{needs}; model {name!r} must have one output, logits (batch, seq, vocabulary_size). "
                f"Received: {keras.tree.map_structure(lambda x: x.shape, output)}"
            )
        if not self.blocks:
            raise ValueError(f"{needs}; model {name!r} has no `tfllm.layers.TransformerBlock`.")
        for operation, kwargs in operations:
            if not isinstance(operation, TransformerBlock):
                continue
            if not operation.causal:
                raise ValueError(
                    f"{needs}; its blocks must be causal. Received {operation.name} with causal=False."
                )
            unsupported = sorted(key for key in ("attention_mask", "output_length") if kwargs.get(key) is not None)
            if unsupported:
                raise ValueError(
                    f"{needs}; {operation.name} is called with {', '.join(unsupported)}, which cached "
                    "decoding cannot reproduce."
                )

    def empty_caches(self, rows, length):
        """One `block.empty_cache(rows, length)` per block call, in the order the graph runs them."""
        return [block.empty_cache(rows, length) for block in self.blocks]

    def kernels(self):
        """The kernels the steps read, made once per call: `{"output", "dequantized"}`.

        `output`: the transposed tables of the model's output projections. A step's logits are
        then a plain matrix product that reads the kernel in order; transposing inside every
        step instead costs XLA a strided read of the whole table. `dequantized`: the int8
        kernels of weight-only quantized layers cast to float, which the layers' own calls
        would otherwise redo at every step (on a CPU, more than the product itself costs).
        """
        return {
            "output": [_output_kernel(embedding) for embedding in self._reversed],
            "dequantized": [ops.cast(layer._kernel, layer.compute_dtype) for layer in self._int8],
        }

    def __call__(self, token_ids, caches, positions, kernels, logits_at=None):
        """Runs `token_ids` `(rows, seq)`; row `r` at positions `positions[r] + [0, seq)`.

        Args:
            token_ids: int32 `(rows, seq)`.
            caches: from `empty_caches` or the previous call.
            positions: int32 `(rows,)`.
            kernels: from `kernels()`.
            logits_at: optional int32 `(rows,)`: the column of each row whose logits are
                returned (default: the last).

        Returns:
            float32 logits `(rows, vocabulary_size)` and the updated caches.
        """
        positions = ops.cast(positions, "int32")
        token_ids = ops.cast(token_ids, "int32")
        if logits_at is None:
            logits_at = ops.full((ops.shape(token_ids)[0],), ops.shape(token_ids)[1] - 1, "int32")
        updated = []
        output_kernels = dict(zip(map(id, self._reversed), kernels["output"]))

        def hook(operation, *args, **kwargs):
            if isinstance(operation, TransformerBlock):
                index = len(updated)
                if operation is not self.blocks[index]:
                    raise RuntimeError("The model's blocks ran in another order than the decoder found them in.")
                kwargs.pop("padding_mask", None)
                output, cache = operation(
                    *args, cache=caches[index], cache_index=positions, xla=self.xla, training=False, **kwargs
                )
                updated.append(cache)
                if index == len(self.blocks) - 1:
                    # Everything after the last block acts on each position alone.
                    output = ops.take_along_axis(output, ops.cast(logits_at, "int32")[:, None, None], axis=1)
                return output
            if isinstance(operation, PositionalEmbedding):
                return operation(*args, start_index=positions, **kwargs)
            if isinstance(operation, ReversibleEmbedding) and kwargs.get("reverse") and id(operation) in output_kernels:
                return _reverse(operation, args[0], output_kernels[id(operation)])
            return operation(*args, **kwargs)

        inputs = {"token_ids": token_ids}
        if isinstance(self.model.input, dict) and "padding_mask" in self.model.input:
            inputs["padding_mask"] = ops.ones_like(token_ids)
        if not isinstance(self.model.input, dict):
            inputs = token_ids
        with _kernels_replaced(self._int8, kernels["dequantized"]):
            logits = graph.run(self.model, inputs, hook)
        return ops.cast(logits[:, -1], "float32"), updated


@contextlib.contextmanager
def _kernels_replaced(layers, kernels):
    """Each layer's `_kernel` read as the given tensor while the block runs (the attribute is
    set past Keras's tracking, so the layer's variables and the model are left as they were)."""
    originals = [layer._kernel for layer in layers]
    try:
        for layer, kernel in zip(layers, kernels):
            object.__setattr__(layer, "_kernel", kernel)
        yield
    finally:
        for layer, original in zip(layers, originals):
            object.__setattr__(layer, "_kernel", original)


def _output_kernel(embedding):
    if embedding.quantization_mode is not None:
        if embedding.quantization_mode != "int8" or embedding.inputs_quantizer is not None:
            return ops.zeros((0,))  # the layer's own call is used
        if embedding.tie_weights:
            return ops.cast(ops.transpose(embedding._embeddings), embedding.compute_dtype)
        return ops.cast(embedding.reverse_embeddings, embedding.compute_dtype)
    if embedding.tie_weights:
        return ops.transpose(embedding.embeddings)
    return embedding.reverse_embeddings


def _reverse(embedding, hidden, kernel):
    """`embedding(hidden, reverse=True)` with the output kernel made beforehand."""
    if embedding.quantization_mode is not None:
        if embedding.quantization_mode != "int8" or embedding.inputs_quantizer is not None:
            return embedding(hidden, reverse=True)
        # As `ReversibleEmbedding._int8_call`: the product in float, then each column's scale.
        scale = embedding.embeddings_scale if embedding.tie_weights else embedding.reverse_embeddings_scale
        logits = ops.divide(ops.matmul(hidden, kernel), ops.reshape(scale, (-1,)))
        if embedding.logit_soft_cap is not None:
            logits = ops.tanh(logits / embedding.logit_soft_cap) * embedding.logit_soft_cap
        return logits
    dtype = embedding.reverse_dtype or hidden.dtype
    logits = ops.matmul(ops.cast(hidden, dtype), ops.cast(kernel, dtype))
    if embedding.logit_soft_cap is not None:
        logits = ops.tanh(logits / embedding.logit_soft_cap) * embedding.logit_soft_cap
    return logits


def decode(
    model,
    token_ids,
    lengths,
    max_new_tokens,
    config=None,
    *,
    temperature=None,
    top_k=None,
    top_p=None,
    seed=None,
    num_candidates=None,
    xla=True,
    **legacy_options,
):
    """Generates `max_new_tokens` tokens after each prompt: prefill, then one `while_loop`.

    The traceable core of `tfllm.generation.generate`, which batches prompts and compiles
    this function. Call it directly to embed generation in your own graph (a serving
    signature does): the options that may differ per row (`temperature`, `top_k`, `top_p`,
    `seed`) are tensor inputs, so one traced graph serves every value.

    The KV cache has a fixed shape, `prompt_length + max_new_tokens` positions per block.
    The prefill runs over the (right-padded) prompts once; row `r` then writes its `t`-th
    new token at position `lengths[r] + t`, which overwrites the prefill's padding slots
    before any query can attend to them, so each row decodes exactly as it would alone.
    A row stops at its first stop token and is padded after it; the loop ends when every
    row has stopped.

    Args:
        model: a causal language model built from tfllm's layers (see `GPTDecoder`).
        token_ids: int32 `(batch, prompt_length)` prompts, right-padded.
        lengths: int32 `(batch,)` prompt lengths, each in `[1, prompt_length]`.
        max_new_tokens: int (static), the number of new tokens per row.
        config: a `GenerationConfig` (default: greedy). Its options are static.
        temperature, top_k, top_p, seed: optional scalars or `(batch,)` tensors that
            replace the config's values per row (sampling). Here `top_k <= 0` and
            `top_p = 1` keep every candidate. A row's samples depend only on its prompt,
            its seed and its options, never on the rest of the batch.
        num_candidates: int or None (static, sampling): the draw considers only the
            `num_candidates` most likely tokens, within which `top_k` and `top_p` act. By
            default it follows the config: `top_k`, the whole vocabulary for `top_p`, or
            no filtering at all.
        xla: bool (static), whether this function will be compiled by XLA; `False` for a
            plain TensorFlow graph (see `TransformerBlock`'s `xla`). The tokens are the same.
        **legacy_options: deprecated: the static options as keywords (`sampler`,
            `num_beams`, `stop_token_ids`, ...), as `decode` took them before
            `GenerationConfig`; they build one, with a `DeprecationWarning`.

    Returns:
        int32 `(batch * num_return_sequences, prompt_length + max_new_tokens)`: each prompt,
        then its continuation, then padding; the rows of one prompt are adjacent.

    Example:

    >>> model = tfllm.models.GPT.from_preset("gpt-test")
    >>> ids = np.array([[5, 6, 7], [8, 9, 0]], "int32")
    >>> decode(model, ids, np.array([3, 2], "int32"), max_new_tokens=4).shape
    (2, 7)
    """
    if isinstance(config, str) or legacy_options:
        config = _legacy_config(config, legacy_options)
    run = _Decoding(
        model, token_ids, lengths, max_new_tokens, config, temperature, top_k, top_p, seed, num_candidates, xla
    )
    state = ops.while_loop(run.running, run.step, run.start(), maximum_iterations=max_new_tokens - 1)
    return run.output(state)


class _Decoding:
    """One decode run: its options per row, the prefill (`start`), a step, and the output.

    Nothing runs when it is made: `start()` runs the prefill and chooses the first token;
    `step(state)` chooses the next. `decode` loops over `step` in one `while_loop`;
    `stream` calls it from Python, one compiled step at a time.
    """

    def __init__(
        self, model, token_ids, lengths, max_new_tokens, config, temperature, top_k, top_p, seed, num_candidates, xla
    ):
        config = GenerationConfig() if config is None else config
        if not isinstance(config, GenerationConfig):
            raise ValueError(f"`config` must be a `GenerationConfig`. Received: config={config!r}")
        self.decoder = decoder = GPTDecoder(model, xla=xla)
        options = config.decode_options(decoder.vocabulary_size)
        if num_candidates is not None:
            options["num_candidates"] = num_candidates
        row_defaults = config.row_options() if config.sampling else dict(temperature=1.0, top_k=0, top_p=1.0, seed=0)
        row_values = dict(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        row_values = {name: row_defaults[name] if value is None else value for name, value in row_values.items()}
        self.options, self.max_new_tokens = options, max_new_tokens

        token_ids = ops.cast(token_ids, "int32")
        batch_size, prompt_length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        self.buffer_length = prompt_length + max_new_tokens
        limit = decoder.max_sequence_length
        if limit is not None and isinstance(self.buffer_length, int) and self.buffer_length > limit:
            raise ValueError(
                f"The prompts ({prompt_length} tokens) plus `max_new_tokens` exceed the model's "
                f"max_sequence_length={limit}. Received: max_new_tokens={max_new_tokens}"
            )
        copies = options["num_beams"] if options["sampler"] == "beam" else options["num_return_sequences"]

        def per_row(value, dtype, name):
            shape = tuple(ops.shape(value)) if hasattr(value, "shape") else ()
            if len(shape) > 1 or (
                len(shape) == 1 and isinstance(shape[0], int) and isinstance(batch_size, int) and shape[0] != batch_size
            ):
                raise ValueError(
                    f"`{name}` must be a scalar or hold one value per prompt ({batch_size}). Received shape {shape}"
                )
            return ops.repeat(ops.broadcast_to(ops.cast(value, dtype), (batch_size,)), copies, axis=0)

        self.lengths = per_row(lengths, "int32", "lengths")
        self.token_ids = ops.repeat(token_ids, copies, axis=0)
        self.rows = batch_size * copies
        self.kernels = decoder.kernels()
        self.choose = _TokenChoice(
            lengths=self.lengths,
            vocabulary_size=decoder.vocabulary_size,
            temperature=per_row(row_values["temperature"], "float32", "temperature"),
            top_k=per_row(row_values["top_k"], "int32", "top_k"),
            top_p=per_row(row_values["top_p"], "float32", "top_p"),
            keys=selection.random_keys(
                per_row(row_values["seed"], "int32", "seed"), ops.arange(self.rows, dtype="int32") % copies
            ),
            **options,
        )

    def start(self):
        """The prefill over the prompts, and the first token chosen: the loop's first state."""
        pad_token_id = self.options["pad_token_id"]
        # Each prompt, then padding, in a buffer that holds the whole output.
        positions = ops.arange(self.buffer_length, dtype="int32")[None, :]
        buffer = ops.pad(self.token_ids, ((0, 0), (0, self.max_new_tokens)), constant_values=pad_token_id)
        buffer = ops.where(positions < self.lengths[:, None], buffer, pad_token_id)
        # Every prompt position in one pass; logits only where each prompt ends.
        caches = self.decoder.empty_caches(self.rows, self.buffer_length)
        logits, caches = self.decoder(
            self.token_ids, caches, ops.zeros((self.rows,), "int32"), self.kernels, logits_at=self.lengths - 1
        )
        return self.choose(self.choose.initial_state(buffer, caches), logits)

    def running(self, state):
        return ops.logical_and(state["step"] < self.max_new_tokens, ops.logical_not(ops.all(state["done"])))

    def step(self, state):
        # The token chosen last step sits at position `lengths + step - 1`.
        index = self.lengths + state["step"] - 1
        logits, caches = self.decoder(state["token"][:, None], state["caches"], index, self.kernels)
        return self.choose({**state, "caches": caches}, logits)

    def output(self, state):
        if self.options["sampler"] == "beam":
            return self.choose.best_beams(state, self.options["num_return_sequences"])
        return state["ids"]


def _legacy_config(sampler, options):
    """The `GenerationConfig` of a call in `decode`'s earlier form: `sampler` as the fifth
    argument and the static options as keywords (0 and 1.0 meaning off)."""
    warnings.warn(
        "decode(model, ids, lengths, n, sampler, num_beams=..., ...) is deprecated and will be removed in "
        "tfllm 0.3: pass a `tfllm.generation.GenerationConfig` as `config`.",
        DeprecationWarning,
        stacklevel=3,
    )
    sampler = options.pop("sampler", "greedy") if sampler is None else sampler
    if options.get("no_repeat_ngram_size") == 0:
        options["no_repeat_ngram_size"] = None
    if sampler != "beam":
        for name in ("num_beams", "length_penalty"):
            if options.get(name) in (1, 1.0):
                options.pop(name)
    return GenerationConfig(sampler=sampler, **options)


class _TokenChoice:
    """One step of selection: logits in, the loop state with the chosen token written out.

    The loop state is a dict: `ids` (the output buffer), `caches`, `step` (tokens chosen
    so far), `token` (the last one), `done`; plus `seen` (tokens present, for the
    repetition penalty) and, for beam search, `scores` (sums of log-probabilities) and
    `generated` (tokens generated before the stop token).
    """

    def __init__(self, lengths, vocabulary_size, temperature, top_k, top_p, keys, **options):
        self.lengths = lengths
        self.vocabulary_size = vocabulary_size
        # Per row: (rows,) tensors.
        self.temperature, self.top_k, self.top_p, self.keys = temperature, top_k, top_p, keys
        # Static: `GenerationConfig.decode_options` (`sampler`, `num_candidates`, `num_beams`,
        # `length_penalty`, `num_return_sequences`, `repetition_penalty`,
        # `no_repeat_ngram_size`, `stop_token_ids`, `pad_token_id`).
        for name, value in options.items():
            setattr(self, name, value)

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


__all__ = ["DECODE_SAMPLERS", "GPTDecoder", "decode"]
