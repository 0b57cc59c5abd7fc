"""`generate` and `generate_text`: validated options, batched prompts, one cached compiled loop."""

import dataclasses
import weakref

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfllm._validation import check_int
from tfllm.generation import decoding
from tfllm.generation.config import SAMPLERS, GenerationConfig

# model -> {static options: compiled decode}. Weak keys: a model's compiled functions go with it.
_COMPILED = weakref.WeakKeyDictionary()


def generate(
    model,
    token_ids,
    max_new_tokens,
    sampler="greedy",
    *,
    config=None,
    padding_mask=None,
    jit_compile=True,
    **options,
):
    """Continues each prompt by `max_new_tokens` tokens with a causal language model.

    One prefill pass over the prompts fills a fixed-size KV cache; one `while_loop` then
    chooses a token per row per step. On TensorFlow the whole thing is one
    `tf.function(jit_compile=jit_compile)`; on JAX one `jax.jit`. The compiled function is
    kept per model and options, so later calls with the same shapes reuse it. `temperature`,
    `top_p` and `seed` are tensor inputs of it: new values do not compile anew; other
    options (`top_k` included) and new shapes do.

    Args:
        model: `tfllm.models.GPT`, or any causal language model composed from tfllm's layers
            (see `tfllm.generation.GPTDecoder` for what it needs).
        token_ids: the prompts: a list of lists of ints, a `tf.RaggedTensor`, or a dense
            int array `(batch, prompt_length)` (every row full length unless
            `padding_mask` says otherwise). With prompts of different lengths, greedy
            decoding and beam search give each row the result it would get alone.
        max_new_tokens: int > 0. The padded prompt length plus this must fit in the
            model's `max_sequence_length`.
        sampler: one of `"greedy"`, `"random"`, `"top_k"`, `"top_p"`, `"beam"` (see
            `GenerationConfig`).
        config: a `GenerationConfig`, instead of `sampler` and `**options`.
        padding_mask: optional `(batch, prompt_length)` mask for dense `token_ids`, 1 for
            prompt tokens; each row's ones must come first (right padding).
        jit_compile: bool. On TensorFlow, `False` runs the same loop as a plain graph
            (no XLA), as a TF Serving export does. JAX always compiles.
        **options: the options of `GenerationConfig` (`temperature`, `top_k`, `top_p`,
            `seed`, `num_beams`, `length_penalty`, `num_return_sequences`,
            `repetition_penalty`, `no_repeat_ngram_size`, `stop_token_ids`, `pad_token_id`).

    Returns:
        int32 numpy array `(batch * num_return_sequences, prompt_length + max_new_tokens)`,
        `prompt_length` being the longest prompt: each prompt, its continuation, then
        `pad_token_id`.

    Raises:
        ValueError: naming the option, for an unknown sampler or option, an option the
            sampler does not use, or a value out of range; or saying what the model lacks.

    Example:

    >>> model = tfllm.models.GPT.from_preset("gpt-test")
    >>> generate(model, [[1, 2, 3], [4, 5]], max_new_tokens=8).shape
    (2, 11)
    >>> generate(model, [[1, 2, 3]], 8, sampler="top_p", top_p=0.9, seed=1,
    ...          num_return_sequences=4).shape
    (4, 11)
    """
    config = generation_config(config, sampler, options)
    decoder = decoding.GPTDecoder(model)
    static = config.decode_options(decoder.vocabulary_size)
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, minimum=1)

    prompts, lengths = _dense_prompts(token_ids, padding_mask, static["pad_token_id"], decoder.vocabulary_size)
    buffer_length = prompts.shape[1] + max_new_tokens
    if decoder.max_sequence_length is not None and buffer_length > decoder.max_sequence_length:
        raise ValueError(
            f"The longest prompt ({prompts.shape[1]} tokens) plus `max_new_tokens` ({max_new_tokens}) "
            f"exceeds the model's max_sequence_length={decoder.max_sequence_length}. Received: "
            f"max_new_tokens={max_new_tokens}"
        )

    batch_size = prompts.shape[0]
    row = config.row_options()
    tensors = (
        prompts,
        lengths,
        np.full((batch_size,), row["temperature"], "float32"),
        np.full((batch_size,), row["top_k"], "int32"),
        np.full((batch_size,), row["top_p"], "float32"),
        _prompt_seeds(row["seed"], batch_size),
    )
    output = _compiled_decode(model, bool(jit_compile), max_new_tokens, config, static)(*tensors)
    return ops.convert_to_numpy(output).astype("int32")


def generation_config(config, sampler, options):
    """The `GenerationConfig` of a call that takes either `config` or `sampler` + `**options`."""
    if config is not None:
        if not isinstance(config, GenerationConfig):
            raise ValueError(f"`config` must be a `tfllm.generation.GenerationConfig`. Received: config={config!r}")
        if options or sampler != "greedy":
            given = sorted(options) + (["sampler"] if sampler != "greedy" else [])
            raise ValueError(
                f"Give either `config` or generation options, not both. Received config and {', '.join(given)}."
            )
        return config
    known = {field.name for field in dataclasses.fields(GenerationConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(
            f"Unknown generation option(s): {', '.join(unknown)}. Known options: {', '.join(sorted(known))}, "
            "padding_mask, jit_compile."
        )
    return GenerationConfig(sampler=sampler, **options)


def generate_text(
    model, tokenizer, prompts, max_new_tokens, sampler="greedy", *, config=None, include_prompt=True, jit_compile=True,
    **options,
):
    """Generates text from strings through any keras-hub-style tokenizer.

    Args:
        model: a causal language model, as in `generate`.
        tokenizer: `tokenizer(strings)` gives token ids (ragged for a batch) and
            `tokenizer.detokenize(ids)` gives strings back, as keras-hub's and tfllm's
            tokenizers do.
        prompts: a string or a list of strings.
        max_new_tokens: int > 0.
        sampler, config, jit_compile, **options: as in `generate`. Stop tokens are not part
            of the text.
        include_prompt: bool. Whether each returned string starts with its prompt.

    Returns:
        A string for a string prompt, otherwise a list of `len(prompts) *
        num_return_sequences` strings (a prompt's samples adjacent).

    Example:

    >>> tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocabulary)
    >>> model = tfllm.models.GPT("gpt-test", vocabulary_size=tokenizer.vocabulary_size())
    >>> generate_text(model, tokenizer, ["the cat", "a dog"], max_new_tokens=5)
    ['the cat ...', 'a dog ...']
    """
    config = generation_config(config, sampler, options)
    single = isinstance(prompts, (str, bytes))
    batch = [prompts] if single else list(prompts)
    if not batch or not all(isinstance(prompt, (str, bytes)) for prompt in batch):
        raise ValueError(f"`prompts` must be a string or a non-empty list of strings. Received: prompts={prompts!r}")
    # keras-hub tokenizers give a tf.RaggedTensor, or Python lists for Python input.
    token_ids = tokenizer(batch)
    if isinstance(token_ids, tf.RaggedTensor):
        token_ids = token_ids.to_list()
    elif not isinstance(token_ids, (list, tuple)):
        token_ids = np.asarray(ops.convert_to_numpy(token_ids)).tolist()
    output = generate(model, token_ids, max_new_tokens, config=config, jit_compile=jit_compile)

    copies = output.shape[0] // len(token_ids)
    stop = set(config.stop_token_ids or ())
    pieces = []
    for row, ids in enumerate(output):
        length = len(token_ids[row // copies])
        continuation = list(ids[length : length + max_new_tokens])
        for position, token in enumerate(continuation):
            if token in stop:
                continuation = continuation[:position]
                break
        pieces.append((list(ids[:length]) if include_prompt else []) + continuation)
    texts = tokenizer.detokenize(tf.ragged.constant(pieces, dtype=tf.int32, ragged_rank=1))
    if hasattr(texts, "numpy"):
        texts = texts.numpy()
    texts = [_to_str(text) for text in np.asarray(texts).reshape(-1)]
    return texts[0] if single and copies == 1 else texts


def stream(model, prompt, max_new_tokens, sampler="greedy", *, config=None, jit_compile=True, **options):
    """Yields the token ids that continue one prompt, each as soon as it is chosen.

    The same prefill and step as `generate` (the same tokens for the same options and seed),
    run as two compiled functions called from Python, so each token is available at once.
    Stops after `max_new_tokens` tokens or after a stop token (which is yielded).

    Args:
        model, max_new_tokens, sampler, config, jit_compile, **options: as in `generate`;
            beam search and several sequences per prompt do not stream.
        prompt: one prompt, a list of token ids.

    Example:

    >>> for token in stream(model, [1, 2, 3], max_new_tokens=8):
    ...     print(token)
    """
    config = generation_config(config, sampler, options)
    if config.sampler == "beam" or config.num_return_sequences != 1:
        raise ValueError("Streaming gives one sequence, greedy or sampled: beam search and num_return_sequences > 1 do not stream.")
    decoder = decoding.GPTDecoder(model)
    static = config.decode_options(decoder.vocabulary_size)
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, minimum=1)
    prompts, lengths = _dense_prompts([list(prompt)], None, static["pad_token_id"], decoder.vocabulary_size)
    if decoder.max_sequence_length is not None and prompts.shape[1] + max_new_tokens > decoder.max_sequence_length:
        raise ValueError(
            f"The prompt ({prompts.shape[1]} tokens) plus `max_new_tokens` ({max_new_tokens}) exceeds the model's "
            f"max_sequence_length={decoder.max_sequence_length}."
        )
    row = config.row_options()
    tensors = (
        prompts,
        lengths,
        np.full((1,), row["temperature"], "float32"),
        np.full((1,), row["top_k"], "int32"),
        np.full((1,), row["top_p"], "float32"),
        _prompt_seeds(row["seed"], 1),
    )

    def run(token_ids, lengths, temperature, top_k, top_p, seed):
        return decoding._Decoding(
            model, token_ids, lengths, max_new_tokens, config, temperature, top_k, top_p, seed, None,
            xla=bool(jit_compile) or keras.config.backend() == "jax",
        )

    if keras.config.backend() == "tensorflow":
        start = tf.function(lambda *inputs: run(*inputs).start(), jit_compile=bool(jit_compile))
        step = tf.function(lambda state, *inputs: run(*inputs).step(state), jit_compile=bool(jit_compile))
    else:
        start, step = (lambda *inputs: run(*inputs).start()), (lambda state, *inputs: run(*inputs).step(state))
    stop = set(static["stop_token_ids"])
    state = start(*tensors)
    for produced in range(max_new_tokens):
        token = int(ops.convert_to_numpy(state["token"])[0])
        yield token
        if token in stop or produced == max_new_tokens - 1:
            return
        state = step(state, *tensors)


def stream_text(model, tokenizer, prompt, max_new_tokens, sampler="greedy", **options):
    """Yields the text that continues `prompt` piece by piece, as `stream` chooses tokens.

    The pieces joined are the continuation `generate_text(..., include_prompt=False)` gives;
    stop tokens are not part of the text. A character split over several byte-level tokens is
    held back until it is whole.
    """
    ids = tokenizer([prompt])
    ids = ids.to_list()[0] if hasattr(ids, "to_list") else list(np.asarray(ids)[0])
    config = generation_config(options.pop("config", None), sampler, options)
    stop = set(config.stop_token_ids or ())
    new, shown = [], ""
    for token in stream(model, ids, max_new_tokens, config=config):
        if token in stop:
            break
        new.append(token)
        text = _to_str(np.asarray(tokenizer.detokenize(tf.constant(new, tf.int32))).item())
        ready = text[:-1] if text.endswith("\ufffd") else text
        if ready.startswith(shown) and len(ready) > len(shown):
            yield ready[len(shown) :]
            shown = ready
    text = _to_str(np.asarray(tokenizer.detokenize(tf.constant(new, tf.int32))).item()) if new else ""
    if len(text) > len(shown) and text.startswith(shown):
        yield text[len(shown) :]


def _compiled_decode(model, jit_compile, max_new_tokens, config, static):
    """The compiled `decode` for this model and these static options, made once.

    The per-row options (`temperature`, `top_k`, `top_p`, `seed`) are inputs of the
    compiled function, so configs that differ only in them share it.
    """
    functions = _COMPILED.setdefault(model, {})
    key = (jit_compile, tuple(sorted({**static, "max_new_tokens": max_new_tokens}.items())))
    if key not in functions:
        functions[key] = _compile(weakref.ref(model), jit_compile, max_new_tokens, config)
    return functions[key]


def _compile(model_ref, jit_compile, max_new_tokens, config):
    backend = keras.config.backend()
    xla = jit_compile or backend == "jax"

    # The functions hold the model weakly, so that caching them cannot keep it alive.
    def run(token_ids, lengths, temperature, top_k, top_p, seed):
        return decoding.decode(
            model_ref(), token_ids, lengths, max_new_tokens, config,
            temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, xla=xla,
        )

    if backend == "tensorflow":
        return tf.function(run, jit_compile=jit_compile)
    if backend != "jax":
        return run

    import jax

    def stateless_run(variables, *tensors):
        scope = keras.StatelessScope(state_mapping=list(zip(model_ref().variables, variables)))
        with scope:
            return run(*tensors)

    compiled = jax.jit(stateless_run)

    def call(*tensors):
        return compiled([variable.value for variable in model_ref().variables], *tensors)

    return call


def _dense_prompts(token_ids, padding_mask, pad_token_id, vocabulary_size):
    """Right-padded int32 prompts `(batch, longest)` and their int32 lengths `(batch,)`."""
    if isinstance(token_ids, tf.RaggedTensor):
        if padding_mask is not None:
            raise ValueError("`padding_mask` is for dense `token_ids`; a tf.RaggedTensor carries its own lengths.")
        token_ids = token_ids.to_list()
    if isinstance(token_ids, (list, tuple)) and all(isinstance(row, (list, tuple, np.ndarray)) for row in token_ids):
        if padding_mask is not None:
            raise ValueError("`padding_mask` is for dense `token_ids`; a list of prompts carries its own lengths.")
        lengths = np.array([len(row) for row in token_ids], "int32")
        prompts = np.full((len(token_ids), max(lengths, default=0)), pad_token_id, "int64")
        for row, ids in enumerate(token_ids):
            prompts[row, : len(ids)] = np.asarray(ids, "int64").reshape(-1)
    else:
        prompts = np.asarray(ops.convert_to_numpy(token_ids))
        if prompts.ndim != 2:
            raise ValueError(
                "`token_ids` must be a batch of prompts: a list of lists, a tf.RaggedTensor or a 2D "
                f"array. Received an array of shape {prompts.shape}"
            )
        if padding_mask is None:
            lengths = np.full((prompts.shape[0],), prompts.shape[1], "int32")
        else:
            mask = np.asarray(ops.convert_to_numpy(padding_mask)).astype(bool)
            if mask.shape != prompts.shape:
                raise ValueError(
                    f"`padding_mask` must have the shape of `token_ids` {prompts.shape}. "
                    f"Received: padding_mask of shape {mask.shape}"
                )
            lengths = mask.sum(axis=1).astype("int32")
            if not np.array_equal(mask, np.arange(mask.shape[1])[None, :] < lengths[:, None]):
                raise ValueError(
                    "`padding_mask` must mark each prompt's tokens first and its padding after "
                    "(right padding)."
                )
            prompts = np.where(mask, prompts, pad_token_id)
    if prompts.shape[0] == 0:
        raise ValueError("`token_ids` holds no prompt.")
    if not np.issubdtype(prompts.dtype, np.integer):
        raise ValueError(f"`token_ids` must be integers. Received dtype {prompts.dtype}")
    if lengths.min() < 1:
        raise ValueError(
            f"Every prompt needs at least one token (prompt {int(np.argmin(lengths))} is empty): the "
            "first new token is predicted from the last prompt token."
        )
    if prompts.min() < 0 or prompts.max() >= vocabulary_size:
        raise ValueError(
            f"`token_ids` must be in [0, {vocabulary_size}) (the model's vocabulary). Received values "
            f"from {prompts.min()} to {prompts.max()}"
        )
    return prompts.astype("int32"), lengths


def _prompt_seeds(seed, batch_size):
    """A seed per prompt, so that the prompts of one batch draw independently."""
    seeds = (seed + np.arange(batch_size, dtype="int64") * 0x9E3779B1) % 2**32
    return seeds.astype("uint32").view("int32")


def _to_str(text):
    if isinstance(text, bytes):
        return text.decode("utf-8", errors="replace")
    return str(text)


__all__ = ["SAMPLERS", "GenerationConfig", "generate", "generate_text", "stream", "stream_text"]
