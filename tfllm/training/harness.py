"""What every training script shares: the common flags, the set-up, the fit and the finish.

The example scripts (and the `tfllm` command) build their parser with `script_parser`, which
declares the flags every training job takes; each script then adds only its own. `start`
applies the seed, the precision and the output directory; `fit` trains with the standard
callbacks and the time limit; `finish` exports when asked and writes `metrics.json`.

    parser = harness.script_parser(__doc__, data_help="a UTF-8 text file")
    parser.add_argument("--num-layers", type=int, default=4)   # the script's own flags
    args = parser.parse_args(argv)
    harness.start(args)
    ...
    model.compile(..., jit_compile=harness.jit_compile(args))
    history, seconds = harness.fit(model, train, args, epochs=3, validation_data=validation)
    return harness.finish(args, metrics, export=lambda path: export_gpt(model, tokenizer, path))

A script that takes `--strategy` and `--distribution` (`add_distribution_flags`) builds and
compiles its model inside `with harness.strategy_scope(args):`; `start` has then chosen the
strategy and, on a worker that is not the chief, pointed `--output-dir` and `--export-dir` at a
temporary directory, or (on JAX) set the `keras.distribution` the model is built under.
"""

import argparse
import contextlib
import math
import os
import resource
import time

import keras

from tfllm.training import distribute
from tfllm.training.callbacks import ResumableBackup, TimeLimit, training_callbacks, write_metrics
from tfllm.training.compilation import default_jit_compile

PRECISIONS = ("float32", "mixed_bfloat16")


def script_parser(description, *, data_help, validation_help=None, export_help=None):
    """An `argparse.ArgumentParser` with the flags every training script takes.

    `--data`, `--validation-data`, `--output-dir` (required), `--export-dir`, `--seed`,
    `--precision`, `--jit` / `--no-jit` and `--max-minutes`.
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = parser.add_argument_group("common to every training script")
    common.add_argument("--data", help=data_help)
    common.add_argument(
        "--validation-data", help=validation_help or "a validation file (default: hold out part of --data)"
    )
    common.add_argument("--output-dir", required=True, help="where the model, logs and metrics.json go")
    common.add_argument(
        "--export-dir",
        help=export_help or "also export for TF Serving to this base path (e.g. saved_models/NAME): a new version in it",
    )
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--precision", choices=PRECISIONS, default="float32")
    common.add_argument(
        "--jit",
        dest="jit_compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compile the training step with XLA (default: yes with TensorFlow, except mixed_bfloat16 on a CPU)",
    )
    common.add_argument("--max-minutes", type=float, default=None, help="stop training after this long")
    return parser


def start(args):
    """Seeds every generator, sets the precision policy and creates the output directory.

    With `--strategy` other than none, it first creates the strategy (`strategy`; a
    multi-worker one must exist before any other TensorFlow work), and a worker that is not
    the chief writes to a temporary directory instead of `--output-dir` and `--export-dir`.
    With `--distribution`, it sets that `keras.distribution` globally (`keras_distribution`),
    so that the model built next is laid out by it; without the flag it sets none, so that a
    script run again in the same process is not laid out by an earlier run's.
    """
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise ValueError(f"--max-minutes must be > 0. Received: {args.max_minutes}")
    keras.distribution.set_distribution(keras_distribution(args))
    distribution = strategy(args)
    if distribution is not None and not distribute.is_chief(distribution):
        args.output_dir = distribute.output_dir(args.output_dir, distribution)
        if args.export_dir:
            args.export_dir = os.path.join(args.output_dir, "export")
    keras.utils.set_random_seed(args.seed)
    keras.config.set_dtype_policy(args.precision)
    os.makedirs(args.output_dir, exist_ok=True)


def jit_compile(args):
    """`--jit` / `--no-jit`, or the default: for the precision (`default_jit_compile`), and off
    under a `--strategy`, because XLA cannot compile a training step that holds the replicas'
    collective operations (TensorFlow 2.21 on CPU: "No registered 'CollectiveGatherV2' OpKernel
    for XLA_CPU_JIT devices")."""
    if args.jit_compile is not None:
        return args.jit_compile
    return default_jit_compile(args.precision) if strategy(args) is None else False


def add_distribution_flags(parser):
    """`--strategy {none,mirrored,multi-worker}` (TensorFlow) and `--distribution {data,model}`
    (JAX), read by `start`, `strategy`, `strategy_scope` and `keras_distribution`."""
    group = parser.add_argument_group("distributed training (docs/distributed.md)")
    group.add_argument(
        "--strategy",
        choices=distribute.STRATEGIES,
        default="none",
        help="tf.distribute data parallelism (TensorFlow backend): mirrored = the local GPUs; multi-worker = one "
        "process per machine, the cluster in TF_CONFIG. --batch-size is the global batch, split among the replicas",
    )
    group.add_argument(
        "--distribution",
        choices=distribute.DISTRIBUTIONS,
        default=None,
        help="keras.distribution over every device (JAX backend): data = DataParallel; model = ModelParallel, the "
        "transformer weights sharded Megatron-style. --batch-size is the global batch, split along the data axis",
    )


def keras_distribution(args):
    """The `keras.distribution.Distribution` of `--distribution` (made once per `args`), or None
    without the flag. Checks that `--batch-size` divides among its data-parallel replicas; the
    flag needs the JAX backend (`distribute.distribution` says so on another)."""
    name = getattr(args, "distribution", None)
    if name is None:
        return None
    if getattr(args, "_keras_distribution", None) is None:
        distribution = distribute.distribution(name)
        distribute.per_replica_batch_size(args.batch_size, distribution)
        args._keras_distribution = distribution
    return args._keras_distribution


def strategy(args):
    """The `tf.distribute.Strategy` of `--strategy` (made once per `args`), or None for none.

    Checks what the strategy needs: a `--batch-size` that divides among the replicas; under
    multi-worker no `--max-minutes` (each worker would stop on its own clock, leaving the
    others waiting) and no `--distill-from`.
    """
    name = getattr(args, "strategy", "none")
    if name == "none":
        return None
    if getattr(args, "_strategy", None) is None:
        if name == "multi-worker" and args.max_minutes:
            raise ValueError(
                "--max-minutes stops each worker on its own clock; under --strategy multi-worker use --steps."
            )
        if getattr(args, "distill_from", None):
            raise ValueError(
                f"--distill-from is not supported under --strategy {name} (its teacher is loaded outside the "
                "strategy); use --strategy none."
            )
        distribution = distribute.strategy(name)
        distribute.per_replica_batch_size(args.batch_size, distribution)
        args._strategy = distribution
    return args._strategy


def strategy_scope(args):
    """`strategy(args).scope()`, where a model is built and compiled; a no-op without one."""
    distribution = strategy(args)
    return contextlib.nullcontext() if distribution is None else distribution.scope()


def fit(model, train, args, **fit_kwargs):
    """`model.fit` (through `distribute.fit`, for `--strategy`) with the standard callbacks
    (backup, CSV and TensorBoard logs) and the `--max-minutes` limit. Returns `(history,
    training_seconds)`.

    Under multi-worker there is no backup: each worker would restore its own, and the
    non-chief workers' backups are in temporary directories, so a stopped run starts over.
    """
    callbacks = training_callbacks(args.output_dir)
    if getattr(args, "strategy", "none") == "multi-worker":
        callbacks = [callback for callback in callbacks if not isinstance(callback, ResumableBackup)]
    if args.max_minutes:
        callbacks.append(TimeLimit(args.max_minutes))
    begin = time.time()
    history = distribute.fit(model, train, callbacks=callbacks, verbose=2, **fit_kwargs)
    return history, time.time() - begin


def add_length_flags(parser, *, bucket_boundaries, examples):
    """`--steps` and `--bucket-boundaries` (default `bucket_boundaries`; `examples` names what
    the buckets group, e.g. "texts"), read back by `training_length` and `bucket_boundaries`."""
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="train for this many batches in all (looping over --data as needed) instead of --epochs; "
        "the learning-rate schedule spans them",
    )
    parser.add_argument(
        "--bucket-boundaries",
        default=bucket_boundaries,
        help=f"comma-separated lengths, e.g. 16,32: batch {examples} of similar length and cut each batch to "
        "its bucket's length (less padding, faster; one XLA compilation per bucket); '' pads every batch to "
        "--sequence-length",
    )


def bucket_boundaries(args):
    """`--bucket-boundaries` as a sorted list of lengths below `--sequence-length`, or None."""
    text = args.bucket_boundaries or ""
    try:
        lengths = [int(length) for length in text.split(",") if length.strip()]
    except ValueError:
        raise ValueError(f"--bucket-boundaries takes comma-separated integers, e.g. 16,32. Received: {text!r}")
    if any(length <= 0 for length in lengths):
        raise ValueError(f"--bucket-boundaries must be positive lengths. Received: {text!r}")
    return sorted(length for length in set(lengths) if length < args.sequence_length) or None


def training_length(train, args):
    """`(train, fit_kwargs, total_steps)` for `--steps` or `--epochs`.

    With `--steps N`: one long epoch of N batches over the data repeated (reshuffled on each
    pass). Otherwise `--epochs` passes over it; the batches are counted once. `total_steps`
    is what the learning-rate schedule spans.
    """
    if args.steps:
        return train.repeat(), {"epochs": 1, "steps_per_epoch": args.steps}, args.steps
    return train, {"epochs": args.epochs}, sum(1 for _ in train) * args.epochs


def add_compression_flags(parser, lora=True):
    """`--quantize` and, with `lora`, `--lora-rank`, `--lora-alpha` and `--lora-targets`, read
    by `enable_lora` and `compress`."""
    parser.add_argument(
        "--quantize",
        choices=["int8", "bfloat16"],
        default=None,
        help="after training, store the model's Dense and Embedding weights as int8 (weight-only; "
        "tfllm.compression.quantize) or the whole model in bfloat16 (tfllm.compression.cast) before "
        "it is evaluated, saved and exported",
    )
    if not lora:
        return
    from tfllm.layers.transformer_block import LORA_TARGETS

    parser.add_argument(
        "--lora-rank",
        type=int,
        default=None,
        help="train LoRA adapters of this rank (and the task head) with the backbone frozen; they are merged "
        "into the model before it is evaluated, saved and exported, and kept alone in OUTPUT_DIR/lora.safetensors",
    )
    parser.add_argument("--lora-alpha", type=float, default=None, help="the adapters' scale is alpha / rank (default: the rank)")
    parser.add_argument(
        "--lora-targets",
        default="query,value",
        help=f"comma-separated projections to adapt, from {', '.join(LORA_TARGETS)}",
    )


def enable_lora(model, args):
    """`model.enable_lora` as `--lora-rank`, `--lora-alpha` and `--lora-targets` say, if at all."""
    if getattr(args, "lora_rank", None) is not None:
        targets = [target.strip() for target in args.lora_targets.split(",") if target.strip()]
        model.enable_lora(args.lora_rank, args.lora_alpha, targets)


def add_distillation_flags(parser):
    """`--distill-from`, `--student-layers`, `--temperature`, `--distill-alpha` and
    `--hidden-weight`, read by `teacher`, `student_from_teacher` and `distill`."""
    group = parser.add_argument_group("distillation (tfllm.compression.Distiller)")
    group.add_argument(
        "--distill-from",
        metavar="RUN_DIR",
        help="a trained run of this script (its --output-dir) to learn from: the model trains on the labels and on "
        "this teacher's softened predictions, with the teacher's tokenizer (and labels)",
    )
    group.add_argument(
        "--student-layers",
        type=int,
        default=None,
        help="with --distill-from: start the student from this many of the teacher's transformer blocks, evenly "
        "spaced, and all its other weights (default: a new model of the size flags)",
    )
    group.add_argument("--temperature", type=float, default=2.0, help="softens both models' predictions")
    group.add_argument(
        "--distill-alpha", type=float, default=0.5, help="the weight of the loss on the labels; the soft targets get 1 - alpha"
    )
    group.add_argument(
        "--hidden-weight",
        type=float,
        default=0.0,
        help="the weight of hidden-state matching: the squared distance between each student block's output and "
        "that of a teacher block, evenly spaced (the blocks --student-layers keeps); needs one width (default 0: off)",
    )


def teacher(args):
    """The `--distill-from` run (a `Run`, loaded once per `args`), or None without the flag."""
    directory = getattr(args, "distill_from", None)
    if not directory:
        if getattr(args, "student_layers", None) is not None:
            raise ValueError("--student-layers takes its blocks from a teacher: give --distill-from too.")
        return None
    if getattr(args, "_teacher", None) is None:
        args._teacher = load_run(directory, compile=False)
    return args._teacher


def student_from_teacher(args):
    """With `--distill-from` and `--student-layers K`: K evenly spaced transformer blocks of the
    teacher's backbone and all its other weights (`tfllm.compression.truncated`), else None."""
    from tfllm.compression import truncated

    run = teacher(args)
    if run is None or args.student_layers is None:
        return None
    backbone = getattr(run.model, "backbone", run.model)
    if args.sequence_length > backbone.max_sequence_length:
        raise ValueError(
            f"--sequence-length {args.sequence_length} exceeds the teacher's maximum, {backbone.max_sequence_length}."
        )
    return truncated(backbone, args.student_layers)


def initialised_from(args):
    """Where the trained model's weights started, for metrics.json: the `--init-from` directory,
    the teacher's blocks (`--distill-from` with `--student-layers`), or "scratch"."""
    if args.init_from:
        return args.init_from
    run = teacher(args)
    if run is not None and args.student_layers is not None:
        from tfllm.compression.distillation import student_layers

        layers = student_layers(getattr(run.model, "backbone", run.model).num_layers, args.student_layers)
        return f"{args.distill_from} (blocks {', '.join(map(str, layers))})"
    return "scratch"


def distill(model, args, labels=None):
    """`model` wrapped in a `tfllm.compression.Distiller` with the `--distill-from` teacher, or
    `model` itself without the flag. `labels` (the class or tag names the script trains on)
    must be the teacher's."""
    from tfllm.compression import Distiller

    run = teacher(args)
    if run is None:
        return model
    if labels is not None and run.labels is not None and list(run.labels) != list(labels):
        raise ValueError(
            f"--distill-from {args.distill_from!r} was trained on the labels {run.labels}; this data has {labels}."
        )
    return Distiller(
        run.model, model, temperature=args.temperature, alpha=args.distill_alpha, hidden_weight=args.hidden_weight
    )


def compress(model, args):
    """After training: `(model, metrics)`, the model as it is then evaluated, saved and exported.

    A `Distiller` gives its student (compiled as the distiller was), and the metrics record
    the teacher. With `--lora-rank`, the adapters and head are saved to `OUTPUT_DIR/lora.safetensors` and the
    model is the merged one (compiled as the trained one was); with `--quantize int8` its
    weights are then int8, with `--quantize bfloat16` the model is a bfloat16 copy. The metrics count the weights that trained (`trainable_parameters`)
    and record the LoRA file's size and the quantization.
    """
    from tfllm import compression

    metrics = {}
    if isinstance(model, compression.Distiller):
        metrics["distilled_from"] = {
            "run": args.distill_from,
            "teacher_layers": getattr(model.teacher, "backbone", model.teacher).num_layers,
            "temperature": model.temperature,
            "alpha": model.alpha,
            "hidden_weight": model.hidden_weight,
        }
        student = model.student
        student.compile_from_config(model.get_compile_config())
        model = student
    trainable = sum(int(math.prod(weight.shape)) for weight in model.trainable_weights)
    metrics["trainable_parameters"] = trainable
    if getattr(args, "lora_rank", None) is not None:
        path = compression.save_lora(model, os.path.join(args.output_dir, "lora.safetensors"))
        metrics.update({"lora": model.backbone.lora, "lora_file": path, "lora_file_bytes": os.path.getsize(path)})
        merged = compression.merge_lora(model)
        merged.compile_from_config(model.get_compile_config())
        model = merged
    if args.quantize == "bfloat16":
        half = compression.cast(model, "bfloat16")
        half.compile_from_config(model.get_compile_config())
        model = half
        metrics["dtype"] = "bfloat16"
    elif args.quantize:
        compression.quantize(model, args.quantize)
        metrics["quantization"] = model.quantization
    return model, metrics


def finish(args, metrics, export=None):
    """Exports with `export(args.export_dir)` when `--export-dir` is given (its path goes into
    the metrics as `export_path`), writes `metrics.json` and returns the metrics. The
    process's peak resident memory before the export goes in as `peak_memory_mb`."""
    metrics["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.export_dir and export is not None:
        metrics["export_path"] = export(args.export_dir)
    write_metrics(args.output_dir, metrics)
    return metrics


def run(main):
    """Runs a script's `main()` from the command line: TensorFlow's pooled CPU allocator is
    chosen before the first tensor (see `use_pooled_cpu_allocator`) and its logging quietened;
    the metrics `main()` returns are printed, floats rounded to 4 places.

    TensorFlow's devices are left to start later, in `main()`: a multi-worker strategy
    (`--strategy multi-worker`) must configure them first.
    """
    from tfllm.training.allocator import ENVIRONMENT_VARIABLE

    os.environ.setdefault(ENVIRONMENT_VARIABLE, "true")
    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
    metrics = main()
    print_metrics(metrics)
    return metrics


def print_metrics(metrics):
    """Prints a run's metrics on one line, floats rounded to 4 places."""
    print({key: round(value, 4) if isinstance(value, float) else value for key, value in metrics.items()})


def load_bert(directory):
    """`(backbone, tokenizer)` from a `pretrain_bert.py` output or a Hugging Face BERT directory,
    in the order `tfllm.convert.from_huggingface` returns them."""
    import tfllm
    from tfllm.tokenizers import WordPieceTokenizer

    if os.path.isfile(os.path.join(directory, "backbone.keras")):
        backbone = keras.saving.load_model(os.path.join(directory, "backbone.keras"))
        if not isinstance(backbone, tfllm.models.BERT):
            raise ValueError(f"--init-from {directory!r}: backbone.keras holds a {type(backbone).__name__}, not a BERT.")
        return backbone, WordPieceTokenizer.load(os.path.join(directory, "tokenizer"))
    if os.path.isfile(os.path.join(directory, "config.json")):
        backbone, tokenizer = tfllm.convert.from_huggingface(directory)
        if not isinstance(backbone, tfllm.models.BERT):
            raise ValueError(f"--init-from {directory!r} holds a Hugging Face GPT-2; this task needs a BERT.")
        return backbone, tokenizer
    raise ValueError(
        f"--init-from {directory!r} is neither a pretrain_bert.py output (backbone.keras + tokenizer/) nor a "
        "Hugging Face BERT directory (config.json + model.safetensors + vocab.txt)."
    )


def add_bert_flags(parser, *, num_layers, num_heads, hidden_dim, intermediate_dim):
    """Declares the flags `bert_and_tokenizer` reads: `--init-from`, and for a new model
    `--vocabulary-size`, `--cased` and the model sizes (defaults given by the script)."""
    parser.add_argument(
        "--init-from",
        help="a pretrain_bert.py output directory (backbone.keras + tokenizer/) or a Hugging Face BERT "
        "directory (config.json + model.safetensors + vocab.txt)",
    )
    parser.add_argument("--vocabulary-size", type=int, default=8192)
    parser.add_argument("--cased", action="store_true", help="a new tokenizer keeps case and accents")
    parser.add_argument("--num-layers", type=int, default=num_layers)
    parser.add_argument("--num-heads", type=int, default=num_heads)
    parser.add_argument("--hidden-dim", type=int, default=hidden_dim)
    parser.add_argument("--intermediate-dim", type=int, default=intermediate_dim)
    parser.add_argument("--dropout", type=float, default=0.1)


def bert_and_tokenizer(args, texts):
    """`(backbone, tokenizer)` for a fine-tuning script: loaded from `--init-from` (see
    `load_bert`), or new: a WordPiece vocabulary of `--vocabulary-size` trained on `texts`
    (`--cased` keeps case and accents) and a BERT of the `--num-layers`, `--num-heads`,
    `--hidden-dim`, `--intermediate-dim` and `--dropout` flags. With `--distill-from`, the
    teacher's tokenizer, and its blocks with `--student-layers` (`student_from_teacher`).
    `--sequence-length` must fit the backbone's positions.

    `texts` is called only for a new tokenizer and returns the training strings.
    """
    from tfllm.tokenizers import WordPieceTokenizer

    run = teacher(args)
    if run is not None:
        if args.init_from:
            raise ValueError(
                "--init-from and --distill-from exclude each other: the student reads the teacher's tokenizer "
                "(and with --student-layers starts from the teacher's blocks)."
            )
        tokenizer = run.tokenizer
        backbone = student_from_teacher(args) or _new_bert(args, tokenizer)
    elif args.init_from:
        backbone, tokenizer = load_bert(args.init_from)
    else:
        tokenizer = WordPieceTokenizer.train(
            texts(), args.vocabulary_size, lowercase=not args.cased, strip_accents=not args.cased, show_progress=True
        )
        backbone = _new_bert(args, tokenizer)
    if args.sequence_length > backbone.max_sequence_length:
        raise ValueError(
            f"--sequence-length {args.sequence_length} exceeds the backbone's maximum, {backbone.max_sequence_length}."
        )
    return backbone, tokenizer


def _new_bert(args, tokenizer):
    import tfllm

    return tfllm.models.BERT(
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        hidden_dim=args.hidden_dim,
        intermediate_dim=args.intermediate_dim,
        max_sequence_length=args.sequence_length,
        dropout=args.dropout,
    )


class Run:
    """What a training script left in its `--output-dir`, loaded: `model`, `tokenizer`,
    `labels` (a classifier's class names, else None) and `metrics` (its metrics.json, or {})."""

    def __init__(self, directory, model, tokenizer, labels, metrics):
        self.directory, self.model, self.tokenizer, self.labels, self.metrics = directory, model, tokenizer, labels, metrics


# The model files the scripts write, the first found is loaded: train_gpt.py and
# finetune_classifier.py write model.keras; pretrain_bert.py pretrainer.keras and backbone.keras.
MODEL_FILES = ("model.keras", "pretrainer.keras", "backbone.keras")


def load_run(directory, model_file=None, compile=True):
    """Loads a training script's output directory (or a Hugging Face model directory).

    Args:
        directory: the `--output-dir` of a training script: a model file (`model.keras`,
            else `pretrainer.keras`, else `backbone.keras`) and `tokenizer/`, with
            `labels.json` for a classifier. A directory with `config.json` is read by
            `tfllm.convert.from_huggingface` instead.
        model_file: another model file name in it.
        compile: whether the model comes back compiled as it was saved.

    Returns:
        `Run`.
    """
    import json

    import tfllm

    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory!r} is not a directory.")
    if model_file is None and os.path.isfile(os.path.join(directory, "config.json")):
        model, tokenizer = tfllm.convert.from_huggingface(directory)
        return Run(directory, model, tokenizer, None, {})
    names = [model_file] if model_file else MODEL_FILES
    path = next((os.path.join(directory, name) for name in names if os.path.isfile(os.path.join(directory, name))), None)
    if path is None:
        raise FileNotFoundError(
            f"{directory!r} holds no model: expected {' or '.join(names)} (a training script's --output-dir) "
            "or config.json (a Hugging Face directory)."
        )
    model = keras.saving.load_model(path, compile=compile)
    tokenizer_dir = os.path.join(directory, "tokenizer")
    if os.path.isfile(os.path.join(tokenizer_dir, "vocab.json")):
        tokenizer = tfllm.tokenizers.BytePairTokenizer.load(tokenizer_dir)
    elif os.path.isfile(os.path.join(tokenizer_dir, "vocab.txt")):
        tokenizer = tfllm.tokenizers.WordPieceTokenizer.load(tokenizer_dir)
    else:
        raise FileNotFoundError(f"{directory!r} holds no tokenizer/ (vocab.json + merges.txt, or vocab.txt).")
    labels = metrics = None
    if os.path.isfile(os.path.join(directory, "labels.json")):
        with open(os.path.join(directory, "labels.json"), encoding="utf-8") as file:
            labels = json.load(file)
    if os.path.isfile(os.path.join(directory, "metrics.json")):
        with open(os.path.join(directory, "metrics.json"), encoding="utf-8") as file:
            metrics = json.load(file)
    return Run(directory, model, tokenizer, labels, metrics or {})
