"""How the next token is chosen from the logits: penalties, bans, filtering and sampling.

Every function here is written with `keras.ops` on fixed shapes, so it compiles inside the
decode loop with XLA, runs in a plain TensorFlow graph without `Xla*` ops, and runs under JAX.

Sampling is the Gumbel-max trick: `argmax(logits / temperature + gumbel_noise)` draws a token
from `softmax(logits / temperature)`, and setting a logit to `NEGATIVE` removes that token. The
noise comes from a counter-based hash of `(key, step, candidate)` rather than a stateful
generator, so a row's sample depends only on its own seed: batches, servers and retraces
cannot change it.
"""

import keras
from keras import ops

# The logit given to a token that must not be chosen. Finite, so that a softmax over a row
# in which every token is banned stays defined.
NEGATIVE = -1e9


def apply_repetition_penalty(logits, seen, penalty):
    """Makes every token already in the sequence less likely (CTRL, Keskar et al. 2019).

    Args:
        logits: float32 `(rows, vocabulary_size)`.
        seen: bool `(rows, vocabulary_size)`, true for tokens present in the sequence.
        penalty: float > 1 penalizes, 1 does nothing. Positive logits are divided by it and
            negative ones multiplied, so a seen token always loses probability.

    Returns:
        The penalized logits.

    Example:

    >>> logits = keras.ops.convert_to_tensor([[2.0, -1.0, 3.0]])
    >>> seen = keras.ops.convert_to_tensor([[True, True, False]])
    >>> apply_repetition_penalty(logits, seen, 2.0)  # [[1.0, -2.0, 3.0]]
    """
    penalized = ops.where(logits > 0, logits / penalty, logits * penalty)
    return ops.where(seen, penalized, logits)


def ban_repeated_ngrams(logits, token_ids, length, ngram_size):
    """Forbids every token that would repeat an n-gram already in the sequence.

    The last `ngram_size - 1` tokens of each row are compared with every window of the
    row; where a window matches, the token that followed it is banned.

    Args:
        logits: float32 `(rows, vocabulary_size)`.
        token_ids: int32 `(rows, buffer_length)`, each row's tokens from position 0.
        length: int32 `(rows,)`, how many tokens of each row are real so far.
        ngram_size: int >= 1 (static).

    Returns:
        The logits with banned tokens set to `NEGATIVE`.

    Example:

    >>> ids = keras.ops.convert_to_tensor([[5, 6, 5, 0]])
    >>> logits = keras.ops.zeros((1, 8))
    >>> ban_repeated_ngrams(logits, ids, keras.ops.convert_to_tensor([3]), 2)  # token 6 banned
    """
    rows, buffer_length = ops.shape(token_ids)
    num_windows = buffer_length - ngram_size + 1
    if isinstance(num_windows, int):
        if num_windows <= 0:
            return logits
    else:
        # A length known only at run time: no window at all makes every slice below empty.
        num_windows = ops.maximum(num_windows, 0)
    length = ops.reshape(length, (-1, 1))
    windows = ops.arange(num_windows, dtype="int32")[None, :]
    # A window may ban a token only if the whole n-gram it starts is already written.
    matches = windows + ngram_size <= length
    for offset in range(ngram_size - 1):
        prefix_position = ops.clip(length - (ngram_size - 1) + offset, 0, buffer_length - 1)
        prefix_token = ops.take_along_axis(token_ids, prefix_position, axis=1)
        matches = ops.logical_and(matches, token_ids[:, offset : offset + num_windows] == prefix_token)
    banned = token_ids[:, ngram_size - 1 : ngram_size - 1 + num_windows]
    row_index = ops.broadcast_to(ops.arange(rows, dtype="int32")[:, None], ops.shape(banned))
    # (rows * windows, 2): the (row, token) each window would ban.
    indices = ops.reshape(ops.stack([row_index, banned], axis=-1), (-1, 2))
    counts = ops.scatter(indices, ops.reshape(ops.cast(matches, "float32"), (-1,)), ops.shape(logits))
    return ops.where(counts > 0, NEGATIVE, logits)


def sample(logits, key, step, temperature, top_k, top_p, num_candidates=None):
    """Draws one token per row from the temperature-scaled, top-k/top-p filtered logits.

    Top-k keeps the `top_k` most likely tokens; top-p (nucleus, Holtzman et al. 2020) then
    keeps the smallest set of the most likely tokens whose probability, renormalized after
    top-k, reaches `top_p`. The most likely token always survives.

    Args:
        logits: float32 `(rows, vocabulary_size)`.
        key: uint32 `(rows,)` random keys from `random_keys`.
        step: int32 scalar, the index of the token being drawn (a new draw per step).
        temperature: float32 `(rows,)`, > 0.
        top_k: int32 `(rows,)`; values <= 0 keep every candidate.
        top_p: float32 `(rows,)` in (0, 1]; 1 keeps every candidate.
        num_candidates: int or None (static). How many of the most likely tokens the draw
            considers (sorted with `top_k`); `top_k` and `top_p` act within them. `None`
            draws from the whole vocabulary without sorting, ignoring `top_k` and `top_p`.

    Returns:
        int32 `(rows,)` token ids.

    Example:

    >>> logits = keras.random.normal((2, 100))
    >>> key = random_keys(keras.ops.convert_to_tensor([7, 7]))
    >>> sample(logits, key, 0, keras.ops.ones((2,)), keras.ops.full((2,), 5, "int32"),
    ...        keras.ops.ones((2,)), num_candidates=5)
    """
    logits = logits / ops.cast(temperature, "float32")[:, None]
    if num_candidates is None:
        values, candidate_ids = logits, None
    else:
        values, candidate_ids = ops.top_k(logits, num_candidates, sorted=True)
        rank = ops.arange(num_candidates, dtype="int32")[None, :]
        top_k = ops.cast(top_k, "int32")[:, None]
        keep = ops.logical_or(rank < top_k, top_k <= 0)
        values = ops.where(keep, values, NEGATIVE)
        # A softmax over the sorted values (the first is the largest).
        weights = ops.exp(values - values[:, :1])
        probabilities = weights / ops.sum(weights, axis=-1, keepdims=True)
        mass_before = ops.cumsum(probabilities, axis=-1) - probabilities
        keep = ops.logical_and(keep, mass_before < ops.cast(top_p, "float32")[:, None])
        values = ops.where(keep, values, NEGATIVE)
    noise = uniform(key, step, ops.shape(values)[1])
    gumbel = -ops.log(-ops.log(noise))
    choice = argmax(values + gumbel)
    if candidate_ids is None:
        return choice
    return ops.cast(ops.take_along_axis(candidate_ids, choice[:, None], axis=1)[:, 0], "int32")


def argmax(values):
    """The index of each row's largest value (the first one on ties), int32 `(rows,)`.

    The same result as `ops.argmax(values, axis=-1)` for rows without NaN, computed as two
    plain reductions (the maximum, then the first index that holds it). XLA on CPU runs
    these vectorized, where its arg-max reduction carries (value, index) pairs one at a
    time.

    Args:
        values: float `(rows, size)`.

    Returns:
        int32 `(rows,)`, in `[0, size)` (a row with NaN gives some valid index).

    Example:

    >>> argmax(keras.ops.convert_to_tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]]))  # [1, 0]
    """
    size = ops.shape(values)[-1]
    largest = ops.max(values, axis=-1, keepdims=True)
    index = ops.arange(size, dtype="int32")[None, :]
    first = ops.min(ops.where(values == largest, index, size), axis=-1)
    return ops.minimum(first, size - 1)


def random_keys(seed, stream=0):
    """One uint32 random key per row from an int seed per row and a stream number.

    Args:
        seed: int `(rows,)` seeds.
        stream: int or int `(rows,)`; different streams of one seed draw independently
            (e.g. the samples of `num_return_sequences`).

    Returns:
        uint32 `(rows,)` keys for `uniform` and `sample`.

    Example:

    >>> random_keys(keras.ops.convert_to_tensor([1, 1]), keras.ops.convert_to_tensor([0, 1]))
    """
    seed = ops.cast(ops.cast(seed, "int32"), "uint32")
    stream = ops.cast(ops.cast(stream, "int32"), "uint32")
    return _mix(ops.bitwise_xor(_mix(seed), _mix(stream + _u32(_GOLDEN))))


def uniform(key, step, size):
    """Uniform floats in (0, 1), `(rows, size)`, a pure function of `(key, step, column)`.

    Args:
        key: uint32 `(rows,)` from `random_keys`.
        step: int scalar.
        size: int, the number of columns.

    Returns:
        float32 `(rows, size)`.

    Example:

    >>> uniform(random_keys(keras.ops.convert_to_tensor([3])), 0, 4).shape
    (1, 4)
    """
    step = ops.cast(ops.cast(step, "int32"), "uint32")
    row = _mix(ops.bitwise_xor(key, _mix(ops.bitwise_xor(step, _u32(_STEP_SALT)))))
    column = ops.cast(ops.arange(size, dtype="int32"), "uint32") * _u32(_GOLDEN)
    bits = _mix(row[:, None] + column[None, :])
    # The top 24 bits, centred in their interval: never exactly 0 or 1.
    return (ops.cast(ops.right_shift(bits, _u32(8)), "float32") + 0.5) * (1.0 / (1 << 24))


_GOLDEN = 0x9E3779B9
_STEP_SALT = 0x85EBCA6B


def _u32(value):
    return ops.convert_to_tensor(value, dtype="uint32")


def _mix(x):
    """Chris Wellons' `lowbias32`: a fast bijective hash of uint32 with good avalanche."""
    x = ops.bitwise_xor(x, ops.right_shift(x, _u32(16)))
    x = x * _u32(0x7FEB352D)
    x = ops.bitwise_xor(x, ops.right_shift(x, _u32(15)))
    x = x * _u32(0x846CA68B)
    return ops.bitwise_xor(x, ops.right_shift(x, _u32(16)))


__all__ = [
    "NEGATIVE",
    "apply_repetition_penalty",
    "argmax",
    "ban_repeated_ngrams",
    "random_keys",
    "sample",
    "uniform",
]
