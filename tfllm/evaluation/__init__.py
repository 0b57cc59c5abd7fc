"""Evaluation: corpus BLEU and ROUGE (equal to sacrebleu and rouge-score), perplexity and
nats per character of a language model, classification scores, entity-level NER scores
(equal to seqeval) and SQuAD's exact match and F1 (the official v1.1 script's).

- `corpus_bleu(hypotheses, references, tokenize="13a")`
- `rouge(hypotheses, references)`
- `perplexity(model, tokenizer, text, stride=None)`
- `classification_metrics(labels, predictions, label_names)`
- `entity_scores(true_tags, predicted_tags)`, `entities(tags)`
- `squad_scores(predictions, references)`, `squad_exact_match`, `squad_f1`, `normalize_answer`
"""

from tfllm.evaluation.bleu import TOKENIZERS as BLEU_TOKENIZERS
from tfllm.evaluation.bleu import bleu_tokens, corpus_bleu
from tfllm.evaluation.classification import classification_metrics
from tfllm.evaluation.language_model import perplexity
from tfllm.evaluation.ner import entities, entity_scores
from tfllm.evaluation.rouge import rouge, rouge_tokens
from tfllm.evaluation.squad import exact_match as squad_exact_match
from tfllm.evaluation.squad import f1 as squad_f1
from tfllm.evaluation.squad import normalize_answer, squad_scores

__all__ = [
    "BLEU_TOKENIZERS",
    "bleu_tokens",
    "classification_metrics",
    "corpus_bleu",
    "entities",
    "entity_scores",
    "normalize_answer",
    "perplexity",
    "rouge",
    "rouge_tokens",
    "squad_exact_match",
    "squad_f1",
    "squad_scores",
]
