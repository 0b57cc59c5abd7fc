"""`generate` and `generate_text`: validated options, batched prompts, one cached compiled loop."""

import random
import weakref

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfllm.generation import decoding

SAMPLERS = ("greedy", "random", "top_k", "top_p", "beam")
_SAMPLING_OPTIONS = ("temperature", "top_k", "top_p", "seed")
_BEAM_OPTIONS = ("num_beams", "length_penalty")
_DEFAULT_NUM_BEAMS = 4

# model -> {static options: compiled decode}. Weak keys: a model's compiled functions go with it.
_COMPILED = weakref.WeakKeyDictionary()


def generate(
    model,
    token_ids,
    max_new_tokens,
    sampler="greedy",
    *,
    padding_mask=None,
    temperature=None,
    top_k=None,
    top_p=None,
    seed=None,
    num_beams=None,
    length_penalty=None,
    num_return_sequences=1,
    repetition_penalty=None,
    no_repeat_ngram_size=None,
    stop_token_ids=None,
    pad_token_id=0,
    jit_compile=True,
    **unknown_options,
):
    """Continues each prompt by `max_new_tokens` tokens with a tfllm GPT model.

    One prefill pass over the prompts fills a fixed-size KV cache; one `while_loop` then
    chooses a token per row per step. On TensorFlow the whole thing is one
    `tf.function(jit_compile=jit_compile)`; on JAX one `jax.jit`. The compiled function is
    kept per model and options, so later calls with the same shapes reuse it. `temperature`,
    `top_p` and `seed` are tensor inputs of it: new values do not compile anew; other
    options (`top_k` included) and new shapes do.

    Samplers:
        - `"greedy"`: the most likely token.
        - `"random"`: a draw from `softmax(logits / temperature)`, optionally filtered by
          `top_k` and/or `top_p` (top-k first, then top-p on the renormalized rest).
        - `"top_k"`, `"top_p"`: `"random"` with that filter, which must then be given.
        - `"beam"`: beam search over `num_beams` hypotheses per prompt.

    Args:
        model: a tfllm GPT model (`tfllm.models.GPT`).
        token_ids: the prompts: a list of lists of ints, a `tf.RaggedTensor`, or a dense
            int array `(batch, prompt_length)` (every row full length unless
            `padding_mask` says otherwise). With prompts of different lengths, greedy
            decoding and beam search give each row the result it would get alone.
        max_new_tokens: int > 0. The padded prompt length plus this must fit in the
            model's `max_sequence_length`.
        sampler: one of `"greedy"`, `"random"`, `"top_k"`, `"top_p"`, `"beam"`.
        padding_mask: optional `(batch, prompt_length)` mask for dense `token_ids`, 1 for
            prompt tokens; each row's ones must come first (right padding).
        temperature: float > 0, default 1 (sampling only).
        top_k: int >= 1 (sampling only): draw among the `top_k` most likely tokens.
        top_p: float in (0, 1] (sampling only): draw among the most likely tokens holding
            this much probability.
        seed: int (sampling only). The same seed and inputs give the same output. Each
            prompt's draws use a seed made from `seed` and its row, so the rows of a
            batch are independent samples. `None` draws a fresh seed.
        num_beams: int >= 1, default 4 (beam search only).
        length_penalty: float, default 1 (beam search only): hypotheses are ranked by
            `sum of log-probabilities / generated_length ** length_penalty`; it matters
            only when `stop_token_ids` end beams at different lengths.
        num_return_sequences: int >= 1: rows per prompt in the output, adjacent; independent
            samples for sampling, the best beams (<= `num_beams`) for beam search; 1 for
            greedy.
        repetition_penalty: float > 0; > 1 makes tokens already in the sequence (prompt
            included) less likely: positive logits divided by it, negative multiplied.
        no_repeat_ngram_size: int >= 1: never produce an n-gram of this size twice in a
            row's sequence (prompt included).
        stop_token_ids: an int or a list of ints. A row stops after producing one of them
            (kept in the output) and is padded after it.
        pad_token_id: int, default 0: fills each row after its continuation.
        jit_compile: bool. On TensorFlow, `False` runs the same loop as a plain graph
            (no XLA), as a TF Serving export does. JAX always compiles.

    Returns:
        int32 numpy array `(batch * num_return_sequences, prompt_length + max_new_tokens)`,
        `prompt_length` being the longest prompt: each prompt, its continuation, then
        `pad_token_id`.

    Raises:
        ValueError: naming the option, for an unknown sampler or option, an option the
            sampler does not use, or a value out of range.

    Example:

    >>> model = tfllm.models.GPT("gpt-test")
    >>> generate(model, [[1, 2, 3], [4, 5]], max_new_tokens=8).shape
    (2, 11)
    >>> generate(model, [[1, 2, 3]], 8, sampler="top_p", top_p=0.9, seed=1,
    ...          num_return_sequences=4).shape
    (4, 11)
    """
    if unknown_options:
        raise ValueError(
            f"Unknown generation option(s): {', '.join(sorted(unknown_options))}. Known options: "
            "padding_mask, temperature, top_k, top_p, seed, num_beams, length_penalty, "
            "num_return_sequences, repetition_penalty, no_repeat_ngram_size, stop_token_ids, "
            "pad_token_id, jit_compile."
        )
    decoder = decoding.GPTDecoder(model)
    vocabulary_size = decoder.vocabulary_size
    max_new_tokens = _check_int("max_new_tokens", max_new_tokens, minimum=1)
    options = _check_sampler_options(
        sampler,
        vocabulary_size,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        num_beams=num_beams,
        length_penalty=length_penalty,
        num_return_sequences=num_return_sequences,
    )
    pad_token_id = _check_token_id("pad_token_id", pad_token_id, vocabulary_size)
    stop_token_ids = _stop_tokens(stop_token_ids)
    stop_token_ids = tuple(_check_token_id("stop_token_ids", token, vocabulary_size) for token in stop_token_ids)
    if repetition_penalty is None:
        repetition_penalty = 1.0
    repetition_penalty = _check_positive_float("repetition_penalty", repetition_penalty)
    no_repeat_ngram_size = 0 if no_repeat_ngram_size is None else _check_int(
        "no_repeat_ngram_size", no_repeat_ngram_size, minimum=1
    )

    prompts, lengths = _dense_prompts(token_ids, padding_mask, pad_token_id, vocabulary_size)
    buffer_length = prompts.shape[1] + max_new_tokens
    if buffer_length > decoder.max_sequence_length:
        raise ValueError(
            f"The longest prompt ({prompts.shape[1]} tokens) plus `max_new_tokens` ({max_new_tokens}) "
            f"exceeds the model's max_sequence_length={decoder.max_sequence_length}. Received: "
            f"max_new_tokens={max_new_tokens}"
        )

    static = dict(
        max_new_tokens=max_new_tokens,
        sampler=options["sampler"],
        num_candidates=options["num_candidates"],
        num_beams=options["num_beams"],
        length_penalty=options["length_penalty"],
        num_return_sequences=options["num_return_sequences"],
        repetition_penalty=repetition_penalty,
        no_repeat_ngram_size=no_repeat_ngram_size,
        stop_token_ids=stop_token_ids,
        pad_token_id=pad_token_id,
    )
    batch_size = prompts.shape[0]
    tensors = (
        prompts,
        lengths,
        np.full((batch_size,), options["temperature"], "float32"),
        np.full((batch_size,), options["top_k"], "int32"),
        np.full((batch_size,), options["top_p"], "float32"),
        _prompt_seeds(options["seed"], batch_size),
    )
    output = _compiled_decode(model, bool(jit_compile), static)(*tensors)
    return ops.convert_to_numpy(output).astype("int32")


def generate_text(model, tokenizer, prompts, max_new_tokens, sampler="greedy", *, include_prompt=True, **options):
    """Generates text from strings through any keras-hub-style tokenizer.

    Args:
        model: a tfllm GPT model.
        tokenizer: `tokenizer(strings)` gives token ids (ragged for a batch) and
            `tokenizer.detokenize(ids)` gives strings back, as keras-hub's and tfllm's
            tokenizers do.
        prompts: a string or a list of strings.
        max_new_tokens: int > 0.
        sampler: as in `generate`.
        include_prompt: bool. Whether each returned string starts with its prompt.
        **options: any option of `generate`. Stop tokens are not part of the text.

    Returns:
        A string for a string prompt, otherwise a list of `len(prompts) *
        num_return_sequences` strings (a prompt's samples adjacent).

    Example:

    >>> tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocabulary)
    >>> model = tfllm.models.GPT("gpt-test", vocabulary_size=tokenizer.vocabulary_size())
    >>> generate_text(model, tokenizer, ["the cat", "a dog"], max_new_tokens=5)
    ['the cat ...', 'a dog ...']
    """
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
    output = generate(model, token_ids, max_new_tokens, sampler, **options)

    copies = output.shape[0] // len(token_ids)
    stop = set(_stop_tokens(options.get("stop_token_ids")))
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


def _compiled_decode(model, jit_compile, static):
    """The compiled `decode` for this model and these static options, made once."""
    functions = _COMPILED.setdefault(model, {})
    key = (jit_compile, tuple(sorted(static.items())))
    if key not in functions:
        functions[key] = _compile(weakref.ref(model), jit_compile, static)
    return functions[key]


def _compile(model_ref, jit_compile, static):
    backend = keras.config.backend()
    xla = jit_compile or backend == "jax"

    # The functions hold the model weakly, so that caching them cannot keep it alive.
    def run(token_ids, lengths, temperature, top_k, top_p, seed):
        return decoding.decode(
            model_ref(), token_ids, lengths, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
            xla=xla, **static
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


def _check_sampler_options(sampler, vocabulary_size, **given):
    """Validates the sampler and its options; returns every value `decode` needs."""
    if sampler not in SAMPLERS:
        raise ValueError(f"`sampler` must be one of {SAMPLERS}. Received: sampler={sampler!r}")
    num_return_sequences = _check_int("num_return_sequences", given["num_return_sequences"], minimum=1)
    sampling = sampler in ("random", "top_k", "top_p")
    for name in _SAMPLING_OPTIONS:
        if given[name] is not None and not sampling:
            raise ValueError(
                f"`{name}` applies to sampling (sampler='random', 'top_k' or 'top_p'), not to "
                f"sampler={sampler!r}. Received: {name}={given[name]!r}"
            )
    for name in _BEAM_OPTIONS:
        if given[name] is not None and sampler != "beam":
            raise ValueError(
                f"`{name}` applies to beam search (sampler='beam') only; it does not combine with "
                f"sampler={sampler!r}. Received: {name}={given[name]!r}"
            )
    if sampler in ("top_k", "top_p") and given[sampler] is None:
        raise ValueError(f"sampler={sampler!r} needs the `{sampler}` option, e.g. {sampler}=...")

    options = dict(
        sampler="random" if sampling else sampler,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        seed=0,
        num_candidates=None,
        num_beams=1,
        length_penalty=1.0,
        num_return_sequences=num_return_sequences,
    )
    if sampler == "greedy" and num_return_sequences != 1:
        raise ValueError(
            "Greedy decoding gives one sequence per prompt; sample or use beam search for more. "
            f"Received: num_return_sequences={num_return_sequences}"
        )
    if sampling:
        if given["temperature"] is not None:
            options["temperature"] = _check_positive_float("temperature", given["temperature"])
        if given["top_k"] is not None:
            options["top_k"] = _check_int("top_k", given["top_k"], minimum=1)
            options["num_candidates"] = min(options["top_k"], vocabulary_size)
        if given["top_p"] is not None:
            top_p = given["top_p"]
            if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0.0 < top_p <= 1.0:
                raise ValueError(f"`top_p` must be a float in (0, 1]. Received: top_p={top_p!r}")
            options["top_p"] = float(top_p)
            if options["num_candidates"] is None and top_p < 1.0:
                options["num_candidates"] = vocabulary_size
        seed = given["seed"]
        if seed is None:
            seed = random.randrange(2**31)
        options["seed"] = _check_int("seed", seed, minimum=-(2**31), maximum=2**31 - 1)
    if sampler == "beam":
        num_beams = _DEFAULT_NUM_BEAMS if given["num_beams"] is None else given["num_beams"]
        options["num_beams"] = _check_int("num_beams", num_beams, minimum=1, maximum=vocabulary_size)
        if given["length_penalty"] is not None:
            length_penalty = given["length_penalty"]
            if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)):
                raise ValueError(f"`length_penalty` must be a number. Received: length_penalty={length_penalty!r}")
            options["length_penalty"] = float(length_penalty)
        if num_return_sequences > options["num_beams"]:
            raise ValueError(
                f"`num_return_sequences` must be at most num_beams={options['num_beams']}. "
                f"Received: num_return_sequences={num_return_sequences}"
            )
    return options


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


def _check_int(name, value, minimum=None, maximum=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"`{name}` must be an integer. Received: {name}={value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"`{name}` must be {bounds}. Received: {name}={value!r}")
    return int(value)


def _check_positive_float(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not value > 0:
        raise ValueError(f"`{name}` must be a number > 0. Received: {name}={value!r}")
    return float(value)


def _check_token_id(name, value, vocabulary_size):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < vocabulary_size:
        raise ValueError(f"`{name}` must hold token ids in [0, {vocabulary_size}). Received: {name}={value!r}")
    return int(value)


def _stop_tokens(stop_token_ids):
    """`stop_token_ids` (None, an int or ints) as a tuple."""
    if stop_token_ids is None:
        return ()
    if isinstance(stop_token_ids, (int, np.integer)):
        return (stop_token_ids,)
    if isinstance(stop_token_ids, (str, bytes)) or not hasattr(stop_token_ids, "__iter__"):
        raise ValueError(f"`stop_token_ids` must be an int or a list of ints. Received: stop_token_ids={stop_token_ids!r}")
    return tuple(stop_token_ids)


def _prompt_seeds(seed, batch_size):
    """A seed per prompt, so that the prompts of one batch draw independently."""
    seeds = (seed + np.arange(batch_size, dtype="int64") * 0x9E3779B1) % 2**32
    return seeds.astype("uint32").view("int32")


def _to_str(text):
    if isinstance(text, bytes):
        return text.decode("utf-8", errors="replace")
    return str(text)


__all__ = ["SAMPLERS", "generate", "generate_text"]
