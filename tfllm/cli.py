"""The `tfllm` command: every job of the library from the shell.

Training (the example scripts' programs, with their flags; `tfllm train-gpt --help`):
    tfllm train-gpt --data corpus.txt --output-dir runs/gpt
    tfllm pretrain-bert --data sentences.txt --output-dir runs/bert
    tfllm finetune classifier --data train.tsv --validation-data dev.tsv --output-dir runs/sst2
    tfllm finetune ner --data train.txt --validation-data dev.txt --output-dir runs/ner
    tfllm finetune qa --data train.json --validation-data dev.json --output-dir runs/qa
    tfllm distill --teacher runs/sst2 --data train.tsv --output-dir runs/sst2-student

Using a trained model (RUN: a training script's --output-dir, or a Hugging Face directory):
    tfllm generate RUN --prompt "ROMEO:" --stream
    tfllm export gpt RUN saved_models/gpt              (also: classifier, ner, qa, masked-lm)
    tfllm audit saved_models/gpt/1
    tfllm attention RUN --text "The cat sat" --layer 0 --output attention.png
    tfllm attribute RUN --text "A fine film" --output why        (why.png and why.html)
    tfllm plot runs/gpt                                 (curves.png and one PNG per metric)

Evaluation (the last line printed is one JSON object):
    tfllm evaluate bleu --hypotheses hyp.txt --references ref.txt [--tokenize 13a|zh|none]
    tfllm evaluate rouge --hypotheses hyp.txt --references ref.txt [--tokenize default|zh]
    tfllm evaluate perplexity RUN --data text.txt [--stride N]
    tfllm evaluate classifier RUN --data dev.tsv

Models:
    tfllm presets              the preset table, each model built to count its parameters
    tfllm summary PRESET       build one preset and print its Keras summary

An error is one line on stderr (`tfllm: error: ...`) and exit status 2; `--traceback` shows it whole.
"""

import argparse
import json
import os
import sys
import time

# Subcommand -> example program run with the rest of the command line.
_PROGRAMS = {"train-gpt": "train_gpt", "pretrain-bert": "pretrain_bert", "distill": "distill"}
_FINETUNE = {"classifier": "finetune_classifier", "ner": "finetune_ner", "qa": "finetune_qa"}
_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


class _Progress:
    """A one-line progress bar on stderr: `label [#####.....] done/total elapsed`."""

    def __init__(self, label):
        self.label, self.start = label, time.time()

    def __call__(self, done, total):
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {time.time() - self.start:.0f} s"
        )
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def stage(self, text):
        sys.stderr.write(f"{self.label}: {text} ({time.time() - self.start:.0f} s)\n")
        sys.stderr.flush()


def _print_json(result):
    print(json.dumps(result, ensure_ascii=False))
    return 0


def _read_lines(path, what):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--{what}: no such file: {path}")
    with open(path, encoding="utf-8") as file:
        try:
            return file.read().splitlines()
        except UnicodeDecodeError as error:
            raise ValueError(f"--{what} {path}: not UTF-8 ({error.reason} at byte {error.start})") from None


# --------------------------------------------------------------------------------- commands


def _program(name):
    import importlib

    return importlib.import_module(f"tfllm.examples.{name}")


def _run_program(name, argv, training=True):
    # As `python examples/<name>.py` runs it; the `tfllm` command chose the CPU allocator
    # when it started (tfllm/__init__.py). A training program returns its metrics, printed
    # as `harness.run` prints them.
    result = _program(name).main(argv)
    if training:
        from tfllm.training import harness

        harness.print_metrics(result)
    return 0


def _generate(args, rest):
    if not args.stream:
        return _run_program("generate", ["--model-dir", args.run, *_prompts(args), *rest], training=False)
    from tfllm.generation import stream_text
    from tfllm.training import harness

    run = harness.load_run(args.run)
    options = _sampling_options(rest)
    stop = run.tokenizer.end_of_text_id if getattr(run.tokenizer, "end_of_text_id", None) is not None else None
    if stop is not None:
        options.setdefault("stop_token_ids", stop)
    for prompt in args.prompt or ["ROMEO:"]:
        sys.stdout.write(prompt)
        for piece in stream_text(run.model, run.tokenizer, prompt, args.max_new_tokens, **options):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
    return 0


def _prompts(args):
    flags = []
    for prompt in args.prompt or []:
        flags += ["--prompt", prompt]
    return flags + ["--max-new-tokens", str(args.max_new_tokens)]


def _sampling_options(rest):
    """`--sampler ... --top-p ...` flags after `tfllm generate RUN --stream` as generate's options."""
    parser = argparse.ArgumentParser(prog="tfllm generate --stream", add_help=False)
    parser.add_argument("--sampler", default="greedy")
    for name, kind in (("temperature", float), ("top-k", int), ("top-p", float), ("seed", int),
                       ("repetition-penalty", float), ("no-repeat-ngram-size", int)):
        parser.add_argument(f"--{name}", type=kind)
    args = parser.parse_args(rest)
    return {key: value for key, value in vars(args).items() if value is not None}


def _labelled_run_length(run, args, program):
    """The sequence length to run a labelled task's RUN at: `--sequence-length`, else the one it
    trained with, else the backbone's longest. Raises when RUN has no labels.json."""
    if run.labels is None:
        raise ValueError(f"{args.run!r} has no labels.json: is it a {program} output?")
    return args.sequence_length or run.metrics.get("sequence_length") or run.model.backbone.max_sequence_length


def _export(args):
    import tfllm
    from tfllm.training import harness

    progress = _Progress(f"export {args.kind}")
    progress.stage(f"loading {args.run}")
    run = harness.load_run(args.run, "pretrainer.keras" if args.kind == "masked-lm" else None)
    progress.stage("tracing the signatures, saving, auditing")
    if args.kind == "gpt":
        path = tfllm.export.export_gpt(run.model, run.tokenizer, args.base_path, max_new_tokens=args.max_new_tokens)
    elif args.kind == "classifier":
        length = _labelled_run_length(run, args, "finetune_classifier.py")
        path = tfllm.export.export_classifier(
            run.model, run.tokenizer, run.labels, args.base_path, sequence_length=length,
            text_pair=bool(run.metrics.get("text_pair")),
        )
    elif args.kind == "ner":
        length = _labelled_run_length(run, args, "finetune_ner.py")
        path = tfllm.export.export_token_classifier(
            run.model, run.tokenizer, run.labels, args.base_path, sequence_length=length, stride=run.metrics.get("stride")
        )
    elif args.kind == "qa":
        windowing_path = os.path.join(args.run, "qa.json")
        if not os.path.exists(windowing_path):
            raise ValueError(f"{args.run!r} has no qa.json: is it a finetune_qa.py output?")
        with open(windowing_path) as file:
            windowing = json.load(file)
        if args.sequence_length:
            windowing["sequence_length"] = args.sequence_length
        path = tfllm.export.export_question_answerer(run.model, run.tokenizer, args.base_path, **windowing)
    else:
        length = args.sequence_length or run.model.backbone.max_sequence_length
        path = tfllm.export.export_masked_lm(run.model, run.tokenizer, args.base_path, sequence_length=length)
    progress.stage(f"wrote {path}")
    return _print_json({"export_path": path})


def _audit(args):
    from tfllm.export import audit

    report = audit(args.path, raise_on_failure=False)
    print(report)
    return 0 if report.ok else 1


def _evaluate(args):
    from tfllm import evaluation

    if args.metric in ("bleu", "rouge"):
        hypotheses = _read_lines(args.hypotheses, "hypotheses")
        references = _read_lines(args.references, "references")
        if args.metric == "bleu":
            result = evaluation.corpus_bleu(hypotheses, references, tokenize=args.tokenize or "13a")
        else:
            result = evaluation.rouge(hypotheses, references, tokenize=args.tokenize or "default")
        return _print_json(result)

    from tfllm.training import harness

    if args.run is None or args.data is None:
        raise ValueError(f"`tfllm evaluate {args.metric}` needs a RUN directory and --data.")
    run = harness.load_run(args.run)
    if args.metric == "perplexity":
        if not os.path.isfile(args.data):
            raise FileNotFoundError(f"--data: no such file: {args.data}")
        with open(args.data, encoding="utf-8") as file:
            text = file.read()
        result = evaluation.perplexity(run.model, run.tokenizer, text, stride=args.stride, progress=_Progress("perplexity"))
        return _print_json(result)
    return _print_json(_evaluate_classifier(run, args))


def _evaluate_classifier(run, args):
    import numpy as np

    from tfllm.data import classification_dataset
    from tfllm.evaluation import classification_metrics

    length = _labelled_run_length(run, args, "finetune_classifier.py")
    dataset, _ = classification_dataset(
        args.data, run.tokenizer, length, 64, label_vocabulary=run.labels, shuffle_buffer=0,
        text_column=args.text_column, pair_column=args.pair_column, label_column=args.label_column,
    )
    batches = sum(1 for _ in dataset)
    progress, labels, predictions = _Progress("classifier"), [], []
    for index, (features, label_ids) in enumerate(dataset):
        predictions.append(np.argmax(np.asarray(run.model(features, training=False)), axis=-1))
        labels.append(label_ids.numpy())
        progress(index + 1, batches)
    return classification_metrics(np.concatenate(labels), np.concatenate(predictions), run.labels)


def _plot(args):
    from tfllm.inspect import plot_training

    return _print_json({"pngs": plot_training(args.run, args.output)})


def _attention(args):
    import numpy as np

    from tfllm.inspect import attention, plot_attention
    from tfllm.training import harness

    run = harness.load_run(args.run)
    maps = attention(run.model, run.tokenizer, args.text, sequence_length=args.max_tokens)
    if maps.truncated:
        print(f"tfllm: the text has {maps.total_tokens} tokens; the first {len(maps.tokens)} are shown.", file=sys.stderr)
    path = plot_attention(maps, args.layer, args.output)
    layers, heads = maps.weights.shape[:2]
    entropy = -(maps.weights * np.log(np.maximum(maps.weights, 1e-12))).sum(-1).mean(-1)
    return _print_json(
        {"png": path, "tokens": maps.tokens, "layers": int(layers), "heads": int(heads),
         "total_tokens": maps.total_tokens, "mean_entropy": entropy[args.layer].round(4).tolist()}
    )


def _attribute(args):
    from tfllm.inspect import attribution_html, integrated_gradients, plot_attribution
    from tfllm.training import harness

    run = harness.load_run(args.run)
    result = integrated_gradients(run.model, run.tokenizer, args.text, labels=run.labels, steps=args.steps)
    png = plot_attribution(result, args.output + ".png")
    page = attribution_html(result, args.output + ".html")
    return _print_json(
        {"png": png, "html": page, "label": result.label, "tokens": result.tokens,
         "scores": [round(float(score), 6) for score in result.scores],
         "completeness_error": result.completeness_error}
    )


def _build(preset):
    from tfllm.models import BERT, BERT_PRESETS, GPT

    return (BERT if preset in BERT_PRESETS else GPT)(preset)


def _presets(args):
    from tfllm.models import BERT_PRESETS, PRESETS

    columns = ["preset", "model", "layers", "heads", "hidden", "feed-forward", "vocabulary", "max length"]
    if args.count:
        columns.append("parameters")
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for name, config in PRESETS.items():
        row = [
            f"`{name}`",
            "BERT" if name in BERT_PRESETS else "GPT",
            config["num_layers"],
            config["num_heads"],
            config["hidden_dim"],
            config["intermediate_dim"],
            config["vocabulary_size"],
            config["max_sequence_length"],
        ]
        if args.count:
            row.append(f"{_build(name).count_params():,}")
        print("| " + " | ".join(str(cell) for cell in row) + " |", flush=True)
    return 0


def _summary(args):
    from tfllm.models import PRESETS

    if args.preset not in PRESETS:
        raise ValueError(f"Unknown preset {args.preset!r}. Available: {', '.join(PRESETS)}")
    _build(args.preset).summary()
    return 0


# --------------------------------------------------------------------------------- parser


def _parser():
    parser = argparse.ArgumentParser(prog="tfllm", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--traceback", action="store_true", help="show an error's whole traceback")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, program in _PROGRAMS.items():
        commands.add_parser(name, help=f"examples/{program}.py; `tfllm {name} --help` lists its flags", add_help=False)
    finetune = commands.add_parser("finetune", help="fine-tune a BERT: `tfllm finetune classifier --help`, `tfllm finetune ner --help`, `tfllm finetune qa --help`", add_help=False)
    finetune.add_argument("task", choices=sorted(_FINETUNE))

    generate = commands.add_parser(
        "generate", help="continue prompts with a trained GPT (examples/generate.py's flags)",
        epilog='example: tfllm generate runs/gpt --prompt "ROMEO:" --sampler top_p --top-p 0.9 --stream',
    )
    generate.add_argument("run", help="a train_gpt.py --output-dir (model.keras + tokenizer/)")
    generate.add_argument("--prompt", action="append", help="a prompt; repeat for several")
    generate.add_argument("--max-new-tokens", type=int, default=64)
    generate.add_argument("--stream", action="store_true", help="print the tokens as they are produced")
    generate.set_defaults(run_command=_generate, takes_rest=True)

    export = commands.add_parser(
        "export", help="export a trained model for TF Serving",
        epilog="example: tfllm export classifier runs/sst2 saved_models/sentiment",
    )
    export.add_argument("kind", choices=["gpt", "classifier", "ner", "qa", "masked-lm"])
    export.add_argument("run", help="the training script's --output-dir")
    export.add_argument("base_path", help="the model's base path, e.g. saved_models/NAME (a new version in it)")
    export.add_argument("--max-new-tokens", type=int, default=None, help="gpt: the served cap")
    export.add_argument("--sequence-length", type=int, default=None, help="classifier, ner, qa, masked-lm: the model's input length (default: the training run's)")
    export.set_defaults(run_command=_export)

    audit = commands.add_parser("audit", help="check an exported SavedModel's ops and signatures for TF Serving")
    audit.add_argument("path", help="a version directory, e.g. saved_models/gpt/1")
    audit.set_defaults(run_command=_audit)

    evaluate = commands.add_parser(
        "evaluate", help="BLEU, ROUGE, perplexity, classifier scores (last line: one JSON object)",
        formatter_class=argparse.RawTextHelpFormatter,
        epilog="examples:\n  tfllm evaluate bleu --hypotheses hyp.txt --references ref.txt --tokenize zh\n"
        "  tfllm evaluate perplexity runs/gpt --data valid.txt --stride 64",
    )
    evaluate.add_argument("metric", choices=["bleu", "rouge", "perplexity", "classifier"])
    evaluate.add_argument("run", nargs="?", help="perplexity, classifier: the training script's --output-dir")
    evaluate.add_argument("--hypotheses", help="bleu, rouge: one hypothesis a line")
    evaluate.add_argument("--references", help="bleu, rouge: one reference a line, as many lines")
    evaluate.add_argument("--tokenize", help="bleu: 13a (default), zh or none; rouge: default or zh")
    evaluate.add_argument("--data", help="perplexity: a text file; classifier: a TSV/CSV/JSONL file")
    evaluate.add_argument("--stride", type=int, default=None, help="perplexity: window stride (default: half the context)")
    evaluate.add_argument("--sequence-length", type=int, default=None, help="classifier: the packed length")
    evaluate.add_argument("--text-column", default="sentence")
    evaluate.add_argument("--pair-column", default=None)
    evaluate.add_argument("--label-column", default="label")
    evaluate.set_defaults(run_command=_evaluate)

    plot = commands.add_parser("plot", help="training curves of a run directory, as PNG")
    plot.add_argument("run", help="a training script's --output-dir (history.csv or logs/)")
    plot.add_argument("--output", help="where the PNGs go (default: the run directory)")
    plot.set_defaults(run_command=_plot)

    attention = commands.add_parser("attention", help="a PNG of one layer's attention heads on a text")
    attention.add_argument("run")
    attention.add_argument("--text", required=True)
    attention.add_argument("--layer", type=int, default=-1, help="the block (default: the last)")
    attention.add_argument("--max-tokens", type=int, default=None, help="show at most this many tokens")
    attention.add_argument("--output", default="attention.png")
    attention.set_defaults(run_command=_attention)

    attribute = commands.add_parser("attribute", help="which tokens made a classifier's prediction (PNG and HTML)")
    attribute.add_argument("run", help="a finetune_classifier.py --output-dir")
    attribute.add_argument("--text", required=True)
    attribute.add_argument("--steps", type=int, default=64, help="integrated-gradient steps")
    attribute.add_argument("--output", default="attribution", help="the files' path without extension")
    attribute.set_defaults(run_command=_attribute)

    presets = commands.add_parser("presets", help="list the model presets")
    presets.add_argument("--no-count", dest="count", action="store_false", help="don't build models to count parameters")
    presets.set_defaults(run_command=_presets)
    summary = commands.add_parser("summary", help="print a preset's Keras model summary")
    summary.add_argument("preset")
    summary.set_defaults(run_command=_summary)
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    traceback = "--traceback" in argv[:1]
    if traceback:
        argv = argv[1:]
    try:
        if argv and argv[0] in _PROGRAMS:
            return _run_program(_PROGRAMS[argv[0]], argv[1:])
        if argv and argv[0] == "finetune":
            if len(argv) < 2 or argv[1] not in _FINETUNE:
                _parser().parse_args(argv[:2] or ["finetune", "--"])
            return _run_program(_FINETUNE[argv[1]], argv[2:])
        parser = _parser()
        args, rest = parser.parse_known_args(argv)
        if rest and not getattr(args, "takes_rest", False):
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        if getattr(args, "takes_rest", False):
            return args.run_command(args, rest)
        return args.run_command(args)
    except _ERRORS as error:
        if traceback:
            raise
        print(f"tfllm: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
