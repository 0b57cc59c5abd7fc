"""Perplexity and nats (bits) per character of a causal language model on a text."""

import math

import numpy as np
from keras import ops

from tfllm._validation import check_positive_int


def perplexity(model, tokenizer, text, stride=None, batch_size=8, progress=None):
    """Scores every token of `text` with sliding windows over the model's context.

    The text is tokenized whole, after the tokenizer's end-of-text token when it has one (so
    the first token is predicted too). Windows of `window = model's max_sequence_length`
    tokens start every `stride` tokens; each token is scored once, in the first window where
    it is not among the first `window - stride` positions (in the very first window, every
    token is scored). So every token but the first `window - stride` has at least
    `window - stride` tokens of context, and a long text is scored whole, never truncated.

    Args:
        model: a causal language model with inputs `{"token_ids", "padding_mask"}` and logits
            `(batch, seq, vocabulary)` (`tfllm.models.GPT`, or any model that generates).
        tokenizer: its tokenizer (`tokenizer(strings)`, `detokenize`; `end_of_text_id` if any).
        text: the text (a string).
        stride: int in [1, window], default `window // 2`. `stride = window` scores disjoint
            windows (the least context, the fastest); smaller strides give each token more
            context at more cost.
        batch_size: windows per model call.
        progress: optional callable `progress(done, total)` called after each batch of windows.

    Returns:
        A dict: `perplexity` (exp of the mean negative log-likelihood per token),
        `nats_per_token`, `nats_per_character`, `bits_per_character`, `tokens` (scored),
        `characters`, `window`, `stride`.

    Raises:
        ValueError: an empty text, a stride out of range, a model without a maximum length.
    """
    from tfllm.generation import GPTDecoder

    window = GPTDecoder(model).max_sequence_length
    if window is None:
        raise ValueError("Perplexity needs a model with a maximum sequence length (a `PositionalEmbedding`).")
    stride = window // 2 if stride is None else check_positive_int("stride", stride)
    if not 1 <= stride <= window:
        raise ValueError(f"`stride` must be in [1, {window}] (the model's context). Received: stride={stride}")
    if not isinstance(text, str) or not text:
        raise ValueError("`text` is empty: there is nothing to score.")

    ids = _ids(tokenizer, text)
    start = getattr(tokenizer, "end_of_text_id", None)
    if start is not None:
        ids = [start] + ids
        characters = len(text)
    else:
        # The first token is context only.
        characters = len(text) - len(_text(tokenizer, ids[:1]))
    if len(ids) < 2:
        raise ValueError("`text` is one token: there is nothing to predict.")

    # (begin, first scored target) of every window: targets are ids[begin + 1 : begin + window + 1].
    spans, scored_until, begin = [], 0, 0
    while scored_until < len(ids) - 1:
        end = min(begin + window, len(ids) - 1)
        spans.append((begin, max(scored_until, begin)))
        scored_until = end
        begin += stride
    total_nll, tokens = 0.0, 0
    for index in range(0, len(spans), batch_size):
        batch = spans[index : index + batch_size]
        inputs = np.zeros((len(batch), window), "int32")
        mask = np.zeros((len(batch), window), "int32")
        for row, (begin, _) in enumerate(batch):
            piece = ids[begin : begin + window]
            inputs[row, : len(piece)] = piece
            mask[row, : len(piece)] = 1
        logits = ops.convert_to_numpy(
            ops.cast(model({"token_ids": inputs, "padding_mask": mask}, training=False), "float32")
        ).astype("float64")
        log_probs = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
        for row, (begin, first) in enumerate(batch):
            last = min(begin + window, len(ids) - 1)
            for target in range(first + 1, last + 1):
                total_nll -= log_probs[row, target - 1 - begin, ids[target]]
                tokens += 1
        if progress is not None:
            progress(min(index + batch_size, len(spans)), len(spans))
    nats_per_token = total_nll / tokens
    nats_per_character = total_nll / characters if characters else math.inf
    return dict(
        perplexity=math.exp(nats_per_token),
        nats_per_token=nats_per_token,
        nats_per_character=nats_per_character,
        bits_per_character=nats_per_character / math.log(2),
        tokens=tokens,
        characters=characters,
        window=window,
        stride=stride,
    )


def _ids(tokenizer, text):
    ids = tokenizer([text])
    if hasattr(ids, "to_list"):
        return [int(token) for token in ids.to_list()[0]]
    return [int(token) for token in np.asarray(ops.convert_to_numpy(ids))[0]]


def _text(tokenizer, ids):
    text = tokenizer.detokenize(np.asarray(ids, "int32"))
    text = text.numpy() if hasattr(text, "numpy") else text
    return text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text)
