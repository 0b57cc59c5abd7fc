"""Functional GPT and BERT builders and their presets."""

from tfllm.models.bert import BERT
from tfllm.models.bert_tasks import (
    BERTClassifier,
    BERTPretrainer,
    BERTQuestionAnswerer,
    BERTTokenClassifier,
    masked_lm_loss,
)
from tfllm.models.gpt import GPT
from tfllm.models.presets import BERT_PRESETS, GPT_PRESETS, PRESETS

__all__ = [
    "BERT",
    "BERTClassifier",
    "BERTPretrainer",
    "BERTQuestionAnswerer",
    "BERTTokenClassifier",
    "BERT_PRESETS",
    "GPT",
    "GPT_PRESETS",
    "PRESETS",
    "masked_lm_loss",
]
