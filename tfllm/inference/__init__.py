"""Task inference in TensorFlow ops, shared by evaluation and the exported SavedModels.

- `EntityRecognizer`: entities (text, type, character offsets, score) from a token classifier.
- `sliding_windows`: how sequences longer than a model's input are covered.
"""

from tfllm.inference.token_classification import EntityRecognizer
from tfllm.inference.windows import sliding_windows

__all__ = ["EntityRecognizer", "sliding_windows"]
