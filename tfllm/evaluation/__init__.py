"""Evaluation: corpus BLEU and ROUGE (equal to sacrebleu and rouge-score), perplexity and
nats per character of a language model, and classification scores.

- `corpus_bleu(hypotheses, references, tokenize="13a")`
- `rouge(hypotheses, references)`
- `perplexity(model, tokenizer, text, stride=None)`
- `classification_metrics(labels, predictions, label_names)`
"""

from tfllm.evaluation.bleu import TOKENIZERS as BLEU_TOKENIZERS
from tfllm.evaluation.bleu import bleu_tokens, corpus_bleu
from tfllm.evaluation.classification import classification_metrics
from tfllm.evaluation.language_model import perplexity
from tfllm.evaluation.rouge import rouge, rouge_tokens

__all__ = [
    "BLEU_TOKENIZERS",
    "bleu_tokens",
    "classification_metrics",
    "corpus_bleu",
    "perplexity",
    "rouge",
    "rouge_tokens",
]
