"""Every block's attention probabilities for a text, and heat maps of them."""

import dataclasses
import math

import numpy as np
from keras import ops

from tfllm.inspect._inputs import encode
from tfllm.layers import TransformerBlock
from tfllm.models import graph


@dataclasses.dataclass
class AttentionMaps:
    """The attention of a model on one text.

    Attributes:
        tokens: the tokens shown, as strings (`[CLS]`/`[SEP]` included for BERT).
        weights: float32 `(layers, heads, len(tokens), len(tokens))`: per block call in the
            order the model runs them, each head's probability of attending from a query token
            (row) to a key token (column); rows sum to 1.
        total_tokens: how many tokens the text had; more than `len(tokens)` when the text was
            longer than the model's context and only its first tokens are shown.
    """

    tokens: list
    weights: np.ndarray
    total_tokens: int

    @property
    def truncated(self):
        return self.total_tokens > len(self.tokens)


def attention(model, tokenizer, text, sequence_length=None):
    """The attention probabilities of every block and head of `model` on `text`.

    Works for any Functional model built from tfllm's layers (`GPT`, `BERT`, a task model
    holding one, a composed model): the model's graph runs once with each
    `TransformerBlock` asked for its probabilities (`return_attention_scores`). BERT's
    `[CLS]`-only call of its last block (for the pooler) is not a separate layer here.

    Args:
        model: the model.
        tokenizer: its tokenizer.
        text: a string. Longer than the context (or `sequence_length`), its first tokens are
            shown and `total_tokens` says how many there were.
        sequence_length: optional cap on the tokens shown.

    Returns:
        `AttentionMaps`.
    """
    inputs, tokens, total = encode(model, tokenizer, text, sequence_length)
    weights = []

    def hook(operation, *args, **kwargs):
        if isinstance(operation, TransformerBlock) and kwargs.get("output_length") is None:
            output, probabilities = operation(*args, return_attention_scores=True, training=False, **kwargs)
            weights.append(ops.convert_to_numpy(probabilities)[0])
            return output
        return operation(*args, **kwargs)

    graph.run(model, inputs, hook)
    if not weights:
        raise ValueError(f"{getattr(model, 'name', model)!r} has no `tfllm.layers.TransformerBlock` to inspect.")
    return AttentionMaps(tokens=tokens, weights=np.stack(weights).astype("float32"), total_tokens=total)


def plot_attention(maps, layer, path, heads=None):
    """Writes a PNG: one heat map per head of `layer`, key tokens across, query tokens down.

    Args:
        maps: `AttentionMaps` from `attention`.
        layer: the block's index (negative counts from the last).
        path: the PNG file to write.
        heads: optional list of head indices (default: all).

    Returns:
        `path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = maps.weights.shape[0]
    if not -layers <= layer < layers:
        raise ValueError(f"`layer` must be in [{-layers}, {layers}). Received: layer={layer}")
    weights = maps.weights[layer]
    heads = list(range(weights.shape[0])) if heads is None else list(heads)
    columns = math.ceil(math.sqrt(len(heads)))
    rows = math.ceil(len(heads) / columns)
    count = len(maps.tokens)
    # About 0.14 inch a token: 64 tokens make a 9-inch square per head, labels at 6 points.
    side = max(3.0, 0.14 * count + 1.0)
    font = max(4.0, min(10.0, 360.0 / max(count, 1)))
    figure, axes = plt.subplots(rows, columns, figsize=(side * columns, side * rows), squeeze=False)
    labels = [token.replace("\n", "\\n") for token in maps.tokens]
    for axis in axes.flat[len(heads):]:
        axis.axis("off")
    for axis, head in zip(axes.flat, heads):
        axis.imshow(weights[head], cmap="viridis", vmin=0.0, vmax=float(weights[head].max()) or 1.0)
        axis.set_title(f"layer {layer % layers}, head {head}", fontsize=font + 2)
        axis.set_xticks(range(count), labels, rotation=90, fontsize=font)
        axis.set_yticks(range(count), labels, fontsize=font)
        axis.set_xlabel("attended to (key)", fontsize=font + 1)
        axis.set_ylabel("attending (query)", fontsize=font + 1)
    if maps.truncated:
        figure.suptitle(f"the first {count} of {maps.total_tokens} tokens", fontsize=font + 4)
        figure.tight_layout(rect=(0, 0, 1, 0.97))
    else:
        figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
