"""
Title: Pretrain a BERT with masked-LM and next-sentence prediction
Description: WordPiece trained on the corpus, dynamic masking every epoch, sentence pairs,
and a BERT pretrained with `model.fit`, ready for `finetune_classifier.py --init-from`.

The corpus is a text file with one sentence per line and blank lines between documents,
or a TSV/CSV/JSONL file whose `--text-column` is taken as one document of sentences. The
default is the SST-2 training sentences (downloaded once). Run:

    python examples/pretrain_bert.py --data sst2/train.tsv --output-dir runs/bert-pretrain
    python examples/finetune_classifier.py --init-from runs/bert-pretrain --output-dir runs/sst2

Writes to `--output-dir`: `tokenizer/` (vocab.txt), `backbone.keras` (the encoder alone),
`pretrainer.keras`, `metrics.json` (validation `mlm_accuracy`, `nsp_accuracy`, losses).
`--export-dir saved_models/fill_mask` also exports "fill the [MASK]" and sentence embeddings
for TF Serving.
"""

import math
import os

import keras

import tfllm
from tfllm.data import bert_pretraining_dataset, hold_out_lines, read_classification_file
from tfllm.data.public import sst2
from tfllm.tokenizers import WordPieceTokenizer
from tfllm.training import create_optimizer, harness


def parse_args(argv=None):
    parser = harness.script_parser(
        __doc__,
        data_help="sentences file or TSV/CSV/JSONL (default: download SST-2 train)",
        validation_help="a file of the same kind to validate on (default: the last --validation-fraction of --data)",
        export_help="also export fill-the-[MASK] for TF Serving to this base path (e.g. saved_models/fill_mask)",
    )
    parser.add_argument("--text-column", default="sentence")
    parser.add_argument(
        "--has-header", dest="has_header", action="store_const", const=True, default=None,
        help="a TSV/CSV corpus starts with a header row (default: detected)",
    )
    parser.add_argument(
        "--no-header", dest="has_header", action="store_const", const=False, help="every TSV/CSV row is a sentence"
    )
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
    return parser.parse_args(argv)


def sentence_lines(path, text_column, has_header=None):
    """The corpus as lines: a sentences file as is, or the text column of a TSV/CSV/JSONL file."""
    if os.path.splitext(path)[1].lower() in (".tsv", ".csv", ".jsonl", ".json"):
        examples = read_classification_file(path, text_column=text_column, has_header=has_header)
        return [text.strip() + "\n" for text in examples.texts]
    with open(path, encoding="utf-8", errors="replace") as file:
        return file.readlines()


def sentence_file(path, text_column, output_dir, name, has_header=None):
    """`path` as a sentences file: itself, or its text column written to `output_dir/data/`."""
    if os.path.splitext(path)[1].lower() not in (".tsv", ".csv", ".jsonl", ".json"):
        return path
    target = os.path.join(output_dir, "data", f"{name}.txt")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "w", encoding="utf-8") as file:
        file.writelines(sentence_lines(path, text_column, has_header))
    return target


def main(argv=None):
    args = parse_args(argv)
    harness.start(args)

    # ## Sentences and the WordPiece vocabulary
    corpus = sst2("train", args.data)
    if args.validation_data:
        train_path = sentence_file(corpus, args.text_column, args.output_dir, "train", args.has_header)
        validation_path = sentence_file(
            args.validation_data, args.text_column, args.output_dir, "validation", args.has_header
        )
    else:
        train_path, validation_path = hold_out_lines(
            os.path.splitext(corpus)[0] + ".txt", args.output_dir, args.validation_fraction,
            lines=sentence_lines(corpus, args.text_column, args.has_header),
        )
    tokenizer_dir = os.path.join(args.output_dir, "tokenizer")
    if os.path.exists(os.path.join(tokenizer_dir, "vocab.txt")):
        tokenizer = WordPieceTokenizer.load(tokenizer_dir)
    else:
        tokenizer = WordPieceTokenizer.train(
            [train_path], args.vocabulary_size, lowercase=not args.cased, strip_accents=not args.cased,
            show_progress=True,
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
        jit_compile=harness.jit_compile(args),
    )

    # ## Training
    _, training_seconds = harness.fit(
        pretrainer,
        train.repeat(),
        args,
        steps_per_epoch=args.steps_per_epoch,
        epochs=math.ceil(args.steps / args.steps_per_epoch),
    )

    results = pretrainer.evaluate(validation, return_dict=True, verbose=0)
    backbone.save(os.path.join(args.output_dir, "backbone.keras"))
    pretrainer.save(os.path.join(args.output_dir, "pretrainer.keras"))
    metrics = {f"val_{name}": value for name, value in results.items()}
    metrics.update(
        steps=int(pretrainer.optimizer.iterations.numpy()),
        training_seconds=training_seconds,
        parameters=backbone.count_params(),
    )

    # ## Export for TF Serving: "fill the [MASK]" and sentence embeddings
    def export(path):
        return tfllm.export.export_masked_lm(pretrainer, tokenizer, path, sequence_length=args.sequence_length)

    return harness.finish(args, metrics, export)


if __name__ == "__main__":
    harness.run(main)
