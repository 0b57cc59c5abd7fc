"""Task inference in TensorFlow ops, shared by training, evaluation and the exported SavedModels.

- `EntityRecognizer`: entities (text, type, character offsets, score) from a token classifier.
- `QuestionWindows`, `QuestionAnswerer`: a question and a context of any length as windows,
  and answers (text, character offsets, score) from a span model.
- `sliding_windows`: how sequences longer than a model's input are covered.
"""

from tfllm.inference.question_answering import QuestionAnswerer, QuestionWindows
from tfllm.inference.token_classification import EntityRecognizer
from tfllm.inference.windows import sliding_windows

__all__ = ["EntityRecognizer", "QuestionAnswerer", "QuestionWindows", "sliding_windows"]
