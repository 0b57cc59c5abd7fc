"""Seeing inside a model: attention maps and token attributions, as data, PNG and HTML.

- `attention(model, tokenizer, text)` -> `AttentionMaps` (every block's per-head attention
  probabilities with the tokens); `plot_attention(maps, layer, path)` draws one layer's heads.
- `integrated_gradients(classifier, tokenizer, text)` -> `Attribution` (each token's share of
  the prediction); `plot_attribution` (PNG) and `attribution_html` (HTML) render it.
- `plot_training(run_dir)` draws the loss and metric curves a training run logged.

TensorFlow backend (like `tfllm.export`); the pictures need matplotlib.
"""

from tfllm.inspect.attention import AttentionMaps, attention, plot_attention
from tfllm.inspect.attribution import Attribution, attribution_html, integrated_gradients, plot_attribution
from tfllm.inspect.curves import plot_training, read_history

__all__ = [
    "Attribution",
    "AttentionMaps",
    "attention",
    "attribution_html",
    "integrated_gradients",
    "plot_attention",
    "plot_attribution",
    "plot_training",
    "read_history",
]
