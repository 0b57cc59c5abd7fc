"""tf.data pipelines: causal-LM windows, BERT pretraining (MLM + NSP), classification, length bucketing."""

from tfllm.data import samples
from tfllm.data.bert_pretraining import bert_pretraining_dataset, sentence_pairs
from tfllm.data.bucketing import bucket_by_length
from tfllm.data.causal_lm import causal_lm_dataset, token_stream
from tfllm.data.classification import (
    BERTInputPacker,
    ClassificationExamples,
    build_label_vocabulary,
    classification_dataset,
    read_classification_file,
)
from tfllm.data.conll import QAExample, TaggedSentences, read_conll, read_squad
from tfllm.data.masking import MaskedLMMasker
from tfllm.data.splits import hold_out_lines
from tfllm.data.question_answering import question_answering_dataset, question_answering_windows
from tfllm.data.token_classification import token_classification_dataset

__all__ = [
    "BERTInputPacker",
    "ClassificationExamples",
    "MaskedLMMasker",
    "QAExample",
    "TaggedSentences",
    "bert_pretraining_dataset",
    "bucket_by_length",
    "build_label_vocabulary",
    "causal_lm_dataset",
    "classification_dataset",
    "hold_out_lines",
    "question_answering_dataset",
    "question_answering_windows",
    "read_classification_file",
    "read_conll",
    "read_squad",
    "samples",
    "sentence_pairs",
    "token_classification_dataset",
    "token_stream",
]
