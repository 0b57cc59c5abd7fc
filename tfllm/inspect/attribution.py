"""Which tokens made a classifier's prediction: integrated gradients, as a PNG and as HTML."""

import dataclasses
import html

import numpy as np

from tfllm._validation import check_positive_int
from tfllm.inspect._inputs import encode
from tfllm.layers import ReversibleEmbedding
from tfllm.models import graph


@dataclasses.dataclass
class Attribution:
    """Token importances for one prediction.

    Attributes:
        tokens: the tokens, as strings.
        scores: float `(len(tokens),)`: each token's integrated gradient, summed over the
            embedding; positive pushed the target class's logit up.
        target: the class explained (its index) and `label` its name.
        probabilities: the model's class probabilities for the text.
        logit: the target logit for the text; `baseline_logit` for the all-zero embeddings.
        completeness_error: `|sum(scores) - (logit - baseline_logit)|`, which integrated
            gradients make small (it shrinks with `steps`).
    """

    tokens: list
    scores: np.ndarray
    target: int
    label: str
    probabilities: np.ndarray
    logit: float
    baseline_logit: float
    completeness_error: float


def integrated_gradients(model, tokenizer, text, target=None, labels=None, steps=64, sequence_length=None):
    """Integrated gradients (Sundararajan et al. 2017) of a classifier's logit w.r.t. its token embeddings.

    The token embeddings of `text` are scaled from zero (the baseline) to their value in
    `steps` steps (midpoint rule); the gradient of the target logit averaged over the path,
    times the embedding, summed over its features, is each token's score. The scores add up to
    the logit's change from baseline to text (completeness), up to the path's discretisation.

    Args:
        model: a classifier: `{"token_ids", ...}` -> logits `(batch, classes)`, built from tfllm's
            layers (`BERTClassifier`); its token embedding is the first `ReversibleEmbedding`
            call on the token ids.
        tokenizer: its tokenizer.
        text: a string.
        target: the class to explain (default: the predicted one).
        labels: optional class names.
        steps: points on the path from the baseline.
        sequence_length: optional cap on the tokens (default: the model's context).

    Returns:
        `Attribution`.
    """
    import tensorflow as tf

    steps = check_positive_int("steps", steps)
    inputs, tokens, _ = encode(model, tokenizer, text, sequence_length)
    embedding = next(
        (op for op, kwargs in graph.operations(model) if isinstance(op, ReversibleEmbedding) and not kwargs.get("reverse")),
        None,
    )
    if embedding is None:
        raise ValueError("Integrated gradients need the model's token embedding (a `ReversibleEmbedding`).")
    probabilities = tf.nn.softmax(tf.cast(model(inputs, training=False), tf.float32), axis=-1).numpy()[0]
    if target is None:
        target = int(np.argmax(probabilities))
    if not 0 <= target < probabilities.shape[-1]:
        raise ValueError(f"`target` must be a class in [0, {probabilities.shape[-1]}). Received: target={target}")

    actual = tf.cast(embedding(inputs["token_ids"]), tf.float32)  # (1, seq, hidden)
    alphas = (tf.range(steps, dtype=tf.float32) + 0.5) / steps
    batch = {name: np.repeat(value, steps + 1, axis=0) for name, value in inputs.items()}
    # The path's points, then the baseline (all zeros) as the last row.
    path = tf.concat([alphas[:, None, None] * actual, tf.zeros_like(actual)], axis=0)

    def hook(operation, *args, **kwargs):
        if operation is embedding and not kwargs.get("reverse"):
            return tf.cast(path, operation.compute_dtype)
        return operation(*args, **kwargs)

    with tf.GradientTape() as tape:
        tape.watch(path)
        logits = tf.cast(graph.run(model, batch, hook), tf.float32)[:, target]
        along_path = tf.reduce_sum(logits[:steps])
    gradients = tape.gradient(along_path, path)[:steps]
    scores = tf.reduce_sum(actual[0] * tf.reduce_mean(gradients, axis=0), axis=-1).numpy()
    logit = float(tf.cast(model(inputs, training=False), tf.float32)[0, target])
    baseline_logit = float(logits[steps])
    names = [str(label) for label in labels] if labels is not None else [str(i) for i in range(probabilities.shape[-1])]
    return Attribution(
        tokens=tokens,
        scores=scores,
        target=target,
        label=names[target],
        probabilities=probabilities,
        logit=logit,
        baseline_logit=baseline_logit,
        completeness_error=abs(float(scores.sum()) - (logit - baseline_logit)),
    )


def attribution_html(attribution, path):
    """Writes a self-contained HTML file: the tokens coloured by score (green up, red down)."""
    scale = float(np.max(np.abs(attribution.scores))) or 1.0
    spans = []
    for token, score in zip(attribution.tokens, attribution.scores):
        strength = abs(float(score)) / scale
        colour = "0, 140, 60" if score >= 0 else "200, 30, 30"
        spans.append(
            f'<span title="{score:+.4f}" style="background: rgba({colour}, {strength:.3f}); padding: 2px 3px; '
            f'margin: 1px; border-radius: 3px; display: inline-block">{html.escape(token)}</span>'
        )
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>tfllm attribution</title></head>\n'
        '<body style="font-family: sans-serif; max-width: 60em; margin: 2em auto">\n'
        f"<p>Predicted <b>{html.escape(attribution.label)}</b> "
        f"(p = {attribution.probabilities[attribution.target]:.3f}). Integrated gradients of its logit: "
        "green tokens pushed it up, red ones down; hover for the score.</p>\n"
        f'<p style="line-height: 2">{"".join(spans)}</p>\n</body></html>\n'
    )
    with open(path, "w", encoding="utf-8") as file:
        file.write(page)
    return path


def plot_attribution(attribution, path):
    """Writes a PNG bar chart of the tokens' scores, in text order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(attribution.tokens)
    figure, axis = plt.subplots(figsize=(max(6.0, 0.3 * count + 2.0), 4.0))
    colours = ["#008c3c" if score >= 0 else "#c81e1e" for score in attribution.scores]
    axis.bar(range(count), attribution.scores, color=colours)
    axis.axhline(0.0, color="black", linewidth=0.8)
    axis.set_xticks(range(count), attribution.tokens, rotation=90, fontsize=max(5.0, min(10.0, 400.0 / count)))
    axis.set_ylabel("integrated gradient")
    axis.set_title(
        f"why {attribution.label!r} (p = {attribution.probabilities[attribution.target]:.3f})", fontsize=11
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
