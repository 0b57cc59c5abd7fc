"""
Title: Pretrain a BERT with masked-LM and next-sentence prediction
Description: WordPiece trained on the corpus, dynamic masking every epoch, sentence pairs,
and a BERT pretrained with `model.fit`, ready for `finetune_classifier.py --init-from`.

The corpus is a text file with one sentence per line and blank lines between documents,
or a TSV/CSV/JSONL file whose `--text-column` is taken as one document of sentences. The
default is the SST-2 training sentences (downloaded once). Run:

    python examples/pretrain_bert.py --data ../shared/data/sst2/train.tsv --output-dir runs/bert-pretrain
    python examples/finetune_classifier.py --init-from runs/bert-pretrain --output-dir runs/sst2

Writes to `--output-dir`: `tokenizer/` (vocab.txt), `backbone.keras` (the encoder alone),
`pretrainer.keras`, `metrics.json` (validation `mlm_accuracy`, `nsp_accuracy`, losses).
`--export-dir saved_models/fill_mask` also exports "fill the [MASK]" and sentence embeddings
for TF Serving.
"""

import argparse
import math
import os
import time

import keras
import tensorflow as tf

import tfllm
from tfllm.data import bert_pretraining_dataset, hold_out_lines, read_classification_file
from tfllm.data.public import sst2
from tfllm.tokenizers import WordPieceTokenizer
from tfllm.training import (
    TimeLimit,
    create_optimizer,
    default_jit_compile,
    training_callbacks,
    use_pooled_cpu_allocator,
    write_metrics,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="sentences file or TSV/CSV/JSONL (default: download SST-2 train)")
    parser.add_argument("--text-column", default="sentence")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--validation-fraction", type=float, default=0.05)
    parser.add_argument("--vocabulary-size", type=int, default=8192)
    parser.add_argument("--cased", action="store_true", help="keep case and accents")
    parser.add_argument("--sequence-length", type=int, default=64)
    parser.add_argument("--preset", default=None, help="a BERT preset for the size (else the flags below)")
    parser.add_argument("--num-layers", type=int, default=4)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--hidden-dim", type=int, default=256)
    parser.add_argument("--intermediate-dim", type=int, default=1024)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--whole-word-masking", action="store_true")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--steps-per-epoch", type=int, default=200, help="also the backup interval")
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--precision", choices=["float32", "mixed_bfloat16"], default="float32")
    parser.add_argument(
        "--jit", dest="jit_compile", action=argparse.BooleanOptionalAction, default=None,
        help="compile the training step with XLA (default: yes with TensorFlow, except mixed_bfloat16 on a CPU)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--export-dir", help="also export fill-the-[MASK] for TF Serving to this base path (e.g. saved_models/fill_mask)"
    )
    return parser.parse_args(argv)


def sentence_lines(path, text_column):
    """The corpus as lines: a sentences file as is, or the text column of a TSV/CSV/JSONL file."""
    if os.path.splitext(path)[1].lower() in (".tsv", ".csv", ".jsonl", ".json"):
        return [text.strip() + "\n" for text in read_classification_file(path, text_column=text_column).texts]
    with open(path, encoding="utf-8", errors="replace") as file:
        return file.readlines()


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    keras.config.set_dtype_policy(args.precision)
    os.makedirs(args.output_dir, exist_ok=True)

    # ## Sentences and the WordPiece vocabulary
    corpus = sst2("train", args.data)
    train_path, validation_path = hold_out_lines(
        os.path.splitext(corpus)[0] + ".txt", args.output_dir, args.validation_fraction,
        lines=sentence_lines(corpus, args.text_column),
    )
    tokenizer_dir = os.path.join(args.output_dir, "tokenizer")
    if os.path.exists(os.path.join(tokenizer_dir, "vocab.txt")):
        tokenizer = WordPieceTokenizer.load(tokenizer_dir)
    else:
        tokenizer = WordPieceTokenizer.train(
            [train_path], args.vocabulary_size, lowercase=not args.cased, strip_accents=not args.cased
        )
        tokenizer.save(tokenizer_dir)

    # ## Pairs, packing and dynamic masking
    def dataset(path, **kwargs):
        return bert_pretraining_dataset(
            path,
            tokenizer,
            args.sequence_length,
            args.batch_size,
            whole_word_masking=args.whole_word_masking,
            seed=args.seed,
            **kwargs,
        )

    train, validation = dataset(train_path), dataset(validation_path, drop_remainder=False)

    # ## The model: a BERT encoder with tied masked-LM and next-sentence heads
    size = {} if args.preset else dict(
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        hidden_dim=args.hidden_dim,
        intermediate_dim=args.intermediate_dim,
    )
    backbone = tfllm.models.BERT(
        args.preset,
        vocabulary_size=tokenizer.vocabulary_size(),
        max_sequence_length=args.sequence_length,
        dropout=args.dropout,
        **size,
    )
    pretrainer = tfllm.models.BERTPretrainer(backbone)
    pretrainer.compile(
        optimizer=create_optimizer(args.learning_rate, total_steps=args.steps),
        loss={"mlm": tfllm.models.masked_lm_loss(), "nsp": keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
        weighted_metrics={"mlm": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]},
        metrics={"nsp": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]},
        jit_compile=default_jit_compile(args.precision) if args.jit_compile is None else args.jit_compile,
    )

    # ## Training
    callbacks = training_callbacks(args.output_dir)
    if args.max_minutes:
        callbacks.append(TimeLimit(args.max_minutes))
    start = time.time()
    pretrainer.fit(
        train.repeat(),
        steps_per_epoch=args.steps_per_epoch,
        epochs=math.ceil(args.steps / args.steps_per_epoch),
        callbacks=callbacks,
        verbose=2,
    )
    training_seconds = time.time() - start

    results = pretrainer.evaluate(validation, return_dict=True, verbose=0)
    backbone.save(os.path.join(args.output_dir, "backbone.keras"))
    pretrainer.save(os.path.join(args.output_dir, "pretrainer.keras"))
    metrics = {f"val_{name}": value for name, value in results.items()}
    metrics.update(
        steps=int(pretrainer.optimizer.iterations.numpy()),
        training_seconds=training_seconds,
        parameters=backbone.count_params(),
    )
    if args.export_dir:
        # ## Export for TF Serving: "fill the [MASK]" and sentence embeddings
        metrics["export_path"] = tfllm.export.export_masked_lm(
            pretrainer, tokenizer, args.export_dir, sequence_length=args.sequence_length
        )
    write_metrics(args.output_dir, metrics)
    print({key: round(value, 4) if isinstance(value, float) else value for key, value in metrics.items()})
    return metrics


if __name__ == "__main__":
    use_pooled_cpu_allocator()  # before the first tensor; see its docstring
    tf.get_logger().setLevel("ERROR")
    main()
