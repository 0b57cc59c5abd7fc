"""Functional GPT and BERT builders and their presets."""

from tfllm.models.bert import BERT
from tfllm.models.gpt import GPT
from tfllm.models.presets import BERT_PRESETS, GPT_PRESETS, PRESETS

__all__ = ["BERT", "BERT_PRESETS", "GPT", "GPT_PRESETS", "PRESETS"]
