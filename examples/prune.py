"""
Title: Prune a fine-tuned classifier's attention heads and feed-forward units
Description: Ranks a classifier's attention heads by the gradient of a gate on their outputs
(Michel et al., 2019), removes the least important ones (and optionally feed-forward units),
rebuilds a genuinely smaller model, and fine-tunes it briefly to recover.

Run:

    python examples/prune.py --init-from runs/sst2-minilm --data sst2/train.tsv \\
        --validation-data sst2/dev.tsv --heads 0.5 --steps 300 --learning-rate 5e-5 \\
        --output-dir runs/sst2-pruned --export-dir saved_models/sentiment-pruned

`--init-from` is a `finetune_classifier.py` output directory (`model.keras`, `tokenizer/`,
`labels.json`). The classifier is evaluated, its heads scored on `--importance-batches` batches
of `--data` (`tfllm.compression.head_importance`), the lowest `--heads` fraction of all heads
removed (at least one head stays in every layer) and the lowest `--feedforward` fraction of
each layer's feed-forward units, evaluated again, fine-tuned for `--steps` batches at
`--learning-rate` (0 skips it) and evaluated a last time. `--data` and `--validation-data`
default to the run's held-out split (`data/train.tsv` and `data/validation.tsv`) when it made
one, else SST-2; `--sequence-length` defaults to the run's. Writes to `--output-dir`:
`model.keras`, `tokenizer/`, `labels.json` and `metrics.json` (`val_accuracy_before`,
`val_accuracy_pruned`, `val_accuracy` after recovery, `parameters_before`, `parameters`,
`heads_per_layer`, ...). `--export-dir` exports the pruned classifier for TF Serving.
"""

import json
import os

import keras

import tfllm
from tfllm.compression import prune_by_importance
from tfllm.data import classification_dataset
from tfllm.data.public import sst2
from tfllm.training import create_optimizer, harness


def parse_args(argv=None):
    parser = harness.script_parser(
        __doc__,
        data_help="training TSV/CSV/JSONL, for the importance scores and the recovery (default: the run's "
        "data/train.tsv, else SST-2 train)",
        validation_help="validation file (default: the run's data/validation.tsv, else SST-2 dev)",
        export_help="also export the pruned classifier for TF Serving to this base path: a new version in it",
    )
    parser.add_argument("--init-from", required=True, help="a finetune_classifier.py output directory")
    parser.add_argument("--heads", type=float, default=0.5, help="the fraction of all attention heads to remove")
    parser.add_argument(
        "--feedforward", type=float, default=0.0, help="the fraction of each layer's feed-forward units to remove"
    )
    parser.add_argument("--importance-batches", type=int, default=32, help="batches of --data to rank the heads on")
    parser.add_argument("--steps", type=int, default=200, help="recovery fine-tuning batches (0: none)")
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sequence-length", type=int, default=None, help="default: the run's")
    parser.add_argument("--text-column", default="sentence")
    parser.add_argument("--pair-column", default=None)
    parser.add_argument("--label-column", default="label")
    return parser.parse_args(argv)


def compile_classifier(model, optimizer="adam", jit_compile=False):
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=jit_compile,
    )


def main(argv=None):
    args = parse_args(argv)
    harness.start(args)

    # ## The fine-tuned classifier and its data
    run = harness.load_run(args.init_from, compile=False)
    if not isinstance(run.model, tfllm.models.BERTClassifier) or run.labels is None:
        raise ValueError(f"--init-from {args.init_from!r} must be a finetune_classifier.py output (a BERTClassifier).")
    model, tokenizer, labels = run.model, run.tokenizer, run.labels
    sequence_length = args.sequence_length or run.metrics.get("sequence_length") or model.backbone.max_sequence_length

    def split(name, fallback):
        path = os.path.join(args.init_from, "data", f"{name}.tsv")
        return path if os.path.isfile(path) else fallback()

    train_path = args.data or split("train", lambda: sst2("train"))
    validation_path = args.validation_data or split("validation", lambda: sst2("dev"))
    columns = dict(text_column=args.text_column, pair_column=args.pair_column, label_column=args.label_column)
    train, _ = classification_dataset(
        train_path, tokenizer, sequence_length, args.batch_size, label_vocabulary=labels, seed=args.seed, **columns
    )
    validation, _ = classification_dataset(
        validation_path, tokenizer, sequence_length, args.batch_size, label_vocabulary=labels, shuffle_buffer=0,
        **columns
    )

    def accuracy(classifier):
        return classifier.evaluate(validation, return_dict=True, verbose=0)["accuracy"]

    # ## Rank the heads, prune
    compile_classifier(model)
    accuracy_before = accuracy(model)
    pruned, report = prune_by_importance(
        model, train, head_fraction=args.heads, feedforward_fraction=args.feedforward, steps=args.importance_batches
    )
    compile_classifier(pruned)
    accuracy_pruned = accuracy(pruned)

    # ## Recovery fine-tuning
    training_seconds = 0.0
    if args.steps:
        compile_classifier(
            pruned, create_optimizer(args.learning_rate, total_steps=args.steps), harness.jit_compile(args)
        )
        _, training_seconds = harness.fit(pruned, train.repeat(), args, epochs=1, steps_per_epoch=args.steps)
    accuracy_recovered = accuracy(pruned)

    pruned.save(os.path.join(args.output_dir, "model.keras"))
    tokenizer.save(os.path.join(args.output_dir, "tokenizer"))
    with open(os.path.join(args.output_dir, "labels.json"), "w") as file:
        json.dump(labels, file)
    metrics = {
        "val_accuracy_before": accuracy_before,
        "val_accuracy_pruned": accuracy_pruned,
        "val_accuracy": accuracy_recovered,
        "parameters_before": report["parameters_before"],
        "parameters": report["parameters_after"],
        "heads_per_layer_before": report["heads_before"],
        "heads_per_layer": report["heads_after"],
        "heads_removed": {str(layer): heads for layer, heads in report["heads_removed"].items()},
        "intermediate_per_layer": report["intermediate_after"],
        "recovery_steps": args.steps,
        "training_seconds": training_seconds,
        "num_classes": len(labels),
        "sequence_length": sequence_length,
        "text_pair": args.pair_column is not None,
        "pruned_from": args.init_from,
    }

    # ## Export for TF Serving
    def export(path):
        return tfllm.export.export_classifier(
            pruned, tokenizer, labels, path, sequence_length=sequence_length, text_pair=args.pair_column is not None
        )

    return harness.finish(args, metrics, export)


if __name__ == "__main__":
    harness.run(main)
