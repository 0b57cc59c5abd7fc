"""A text as a model's inputs, with its tokens as strings, for the inspection tools."""

import numpy as np

from tfllm.layers import PositionalEmbedding
from tfllm.models import graph


def context_length(model):
    """The smallest `PositionalEmbedding.sequence_length` of the model, or None."""
    lengths = [operation.sequence_length for operation, _ in graph.operations(model) if isinstance(operation, PositionalEmbedding)]
    return min(lengths) if lengths else None


def encode(model, tokenizer, text, sequence_length=None):
    """`(inputs, tokens, total)`: the model's input dict for `text` (one row, no padding), the
    tokens as strings, and how many tokens the text had before it was cut to the context.

    A model with a `segment_ids` input (BERT) gets `[CLS] text [SEP]`; any other gets the
    text's tokens. A text longer than `sequence_length` (default: the model's context) keeps
    its first tokens.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"`text` must be a non-empty string. Received: {text!r}")
    names = set(model.input) if isinstance(model.input, dict) else {"token_ids"}
    ids = _ids(tokenizer, text)
    limit = sequence_length or context_length(model)
    bert = "segment_ids" in names
    if bert:
        for attribute in ("cls_token_id", "sep_token_id"):
            if getattr(tokenizer, attribute, None) is None:
                raise ValueError(f"A model with segment_ids needs a WordPiece tokenizer with `{attribute}`.")
        total = len(ids) + 2
        if limit is not None:
            ids = ids[: limit - 2]
        ids = [tokenizer.cls_token_id] + ids + [tokenizer.sep_token_id]
    else:
        total = len(ids)
        if limit is not None:
            ids = ids[:limit]
    if not ids:
        raise ValueError(f"`text` has no tokens: {text!r}")
    token_ids = np.asarray([ids], "int32")
    inputs = {"token_ids": token_ids}
    if "padding_mask" in names:
        inputs["padding_mask"] = np.ones_like(token_ids)
    if bert:
        inputs["segment_ids"] = np.zeros_like(token_ids)
    unknown = names - set(inputs)
    if unknown:
        raise ValueError(f"The model takes inputs {sorted(unknown)} that a text does not give.")
    return inputs, [token_text(tokenizer, token) for token in ids], total


def token_text(tokenizer, token):
    """One token as readable text: its vocabulary entry for WordPiece, its bytes decoded for BPE."""
    if hasattr(tokenizer, "cls_token_id") and hasattr(tokenizer, "id_to_token"):
        return tokenizer.id_to_token(int(token))
    text = tokenizer.detokenize(np.asarray([token], "int32"))
    text = text.numpy() if hasattr(text, "numpy") else text
    return text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text)


def _ids(tokenizer, text):
    ids = tokenizer([text])
    if hasattr(ids, "to_list"):
        return [int(token) for token in ids.to_list()[0]]
    return [int(token) for token in np.asarray(ids)[0]]
