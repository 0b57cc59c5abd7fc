"""What each way of shrinking a model buys, through the exported SavedModel, in one table.

Classifier variants, from runs on the same data (e.g. SST-2 from all-MiniLM-L6-v2): the
fully fine-tuned `--run` as `fp32` and `int8` (the same model through
`tfllm.compression.quantize`) and `bf16` (`tfllm.compression.cast`), and each of the other
runs given, in the same three precisions: its
LoRA-merged model (`finetune_classifier.py --lora-rank`), a distilled student
(`distill.py`) and a pruned model (`prune.py`). For each: parameters, SavedModel bytes on disk, the exported
`serving_default` latency at batch 1 and 8 (raw text in; the variants are timed alternately
in one process, medians), and accuracy of the SavedModel on the whole validation file.

GPT: the exported `generate` signature (greedy, `--new-tokens` tokens, batch 1) of one
GPT in float32 and in int8, the same weights, timed alternately; with `--gpt-run` a
`train_gpt.py` run's model, otherwise a freshly initialised 4-layer, 256-wide GPT.

    python -m benchmarks.compression --validation-data sst2/dev.tsv \\
        --run runs/sst2-full --lora-run runs/sst2-lora --distilled-run runs/sst2-student \\
        --pruned-run runs/sst2-pruned      # benchmarks/results/compression.{json,md}
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfllm  # noqa: E402
from benchmarks import reporting  # noqa: E402
from benchmarks.export import alternate, greedy_inputs  # noqa: E402
from tfllm.compression import cast, quantize  # noqa: E402
from tfllm.data import read_classification_file  # noqa: E402
from tfllm.training import harness  # noqa: E402

DEFAULT_OUTPUT = os.path.join(os.path.dirname(__file__), "results", "compression")
GPT_CONFIG = dict(num_layers=4, num_heads=4, hidden_dim=256, intermediate_dim=1024, max_sequence_length=256, dropout=0.0)


def directory_bytes(path):
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def variables_bytes(path):
    """The bytes of the SavedModel's weights (`variables/`), without the graph."""
    return directory_bytes(os.path.join(path, "variables"))


def classifier_variants(runs):
    """`{name: (model, tokenizer, labels, sequence length)}` of the runs (`{prefix: directory}`),
    as loaded, in int8 and in bfloat16."""
    variants = {}
    for prefix, directory in runs.items():
        if directory is None:
            continue
        for precision in ("fp32", "int8", "bf16"):
            loaded = harness.load_run(directory)
            model = loaded.model
            if precision == "int8":
                quantize(model)
            if precision == "bf16":
                model = cast(model, "bfloat16")
            length = loaded.metrics.get("sequence_length") or model.backbone.max_sequence_length
            variants[f"{prefix}{precision}"] = (model, loaded.tokenizer, loaded.labels, length)
    return variants


def classifier_rows(variants, validation_path, directory, repeats):
    examples = read_classification_file(validation_path)
    texts, labels = examples.texts, examples.labels
    served, rows = {}, {}
    for name, (model, tokenizer, label_names, length) in variants.items():
        path = tfllm.export.export_classifier(
            model, tokenizer, label_names, os.path.join(directory, name.replace(" ", "-")),
            sequence_length=length, models_config=False,
        )
        signature = tf.saved_model.load(path).signatures["serving_default"]
        served[name] = signature
        predicted = []
        for start in range(0, len(texts), 64):
            predicted += [label.decode() for label in signature(text=tf.constant(texts[start : start + 64]))["label"].numpy()]
        accuracy = float(np.mean([p == str(t) for p, t in zip(predicted, labels)]))
        rows[name] = dict(
            variant=name, parameters=model.count_params(), savedmodel_bytes=directory_bytes(path),
            variables_bytes=variables_bytes(path), accuracy=accuracy,
        )
        print(f"{name:<20} accuracy {accuracy:.4f}  {rows[name]['savedmodel_bytes'] / 1e6:.1f} MB", flush=True)
    for batch_size in (1, 8):
        batch = tf.constant(texts[:batch_size])
        methods = {name: (lambda signature=signature: signature(text=batch)["label"].numpy()) for name, signature in served.items()}
        for method in methods.values():
            method()
        for name, seconds in alternate(methods, repeats).items():
            rows[name][f"latency_ms_batch_{batch_size}"] = 1000 * statistics.median(seconds)
    baseline = rows.get("fp32")
    for row in rows.values():
        for key in ("latency_ms_batch_1", "latency_ms_batch_8", "savedmodel_bytes", "variables_bytes"):
            if baseline:
                row[f"{key}_vs_fp32"] = row[key] / baseline[key]
    return list(rows.values())


def gpt_rows(directory, repeats, new_tokens, gpt_run=None):
    if gpt_run:
        loaded = harness.load_run(gpt_run)
        model, tokenizer = loaded.model, loaded.tokenizer
    else:
        from tfllm.data.samples import STORIES
        from tfllm.tokenizers import BytePairTokenizer

        tokenizer = BytePairTokenizer.train([STORIES], vocabulary_size=1024)
        model = tfllm.models.GPT(vocabulary_size=tokenizer.vocabulary_size(), **GPT_CONFIG)
    signatures, rows = {}, []
    for precision in ("fp32", "int8"):
        if precision == "int8":
            quantize(model)
        path = tfllm.export.export_gpt(
            model, tokenizer, os.path.join(directory, f"gpt-{precision}"), max_new_tokens=new_tokens,
            stop_token_ids=[], models_config=False,
        )
        signatures[precision] = tf.saved_model.load(path).signatures["generate"]
        rows.append(
            dict(variant=f"GPT {precision}", parameters=model.count_params(), savedmodel_bytes=directory_bytes(path),
                 variables_bytes=variables_bytes(path))
        )
    inputs = greedy_inputs(["To be, or not to be"], new_tokens)
    methods = {name: (lambda signature=signature: signature(**inputs)["completion"].numpy()) for name, signature in signatures.items()}
    for method in methods.values():
        method()
    times = alternate(methods, repeats)
    for row, name in zip(rows, ("fp32", "int8")):
        row["generate_ms_batch_1"] = 1000 * statistics.median(times[name])
        row["generate_ms_vs_fp32"] = statistics.median(s / b for s, b in zip(times[name], times["fp32"]))
        print(f"GPT {name}: generate {row['generate_ms_batch_1']:.1f} ms", flush=True)
    return rows


def markdown(classifier, gpt, settings):
    lines = [
        "| variant | parameters | SavedModel MB (x fp32) | its weights MB (x fp32) | latency batch 1 ms (x fp32) "
        "| latency batch 8 ms (x fp32) | accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in classifier:
        lines.append(
            f"| {row['variant']} | {row['parameters']:,} | {row['savedmodel_bytes'] / 1e6:.1f} "
            f"({row.get('savedmodel_bytes_vs_fp32', 1):.2f}) | {row['variables_bytes'] / 1e6:.1f} "
            f"({row.get('variables_bytes_vs_fp32', 1):.2f}) | {row['latency_ms_batch_1']:.1f} "
            f"({row.get('latency_ms_batch_1_vs_fp32', 1):.2f}) | {row['latency_ms_batch_8']:.1f} "
            f"({row.get('latency_ms_batch_8_vs_fp32', 1):.2f}) | {row['accuracy']:.4f} |"
        )
    if gpt:
        lines += ["", f"| GPT | parameters | SavedModel MB | its weights MB | generate {settings['new_tokens']} tokens, "
                  "batch 1, ms (x fp32) |", "|---|---|---|---|---|"]
        for row in gpt:
            lines.append(
                f"| {row['variant']} | {row['parameters']:,} | {row['savedmodel_bytes'] / 1e6:.1f} | "
                f"{row['variables_bytes'] / 1e6:.1f} | {row['generate_ms_batch_1']:.1f} ({row['generate_ms_vs_fp32']:.2f}) |"
            )
    lines += ["", f"`{settings['command']}` on {settings['machine']}, {settings['repeats']} alternating repeats, medians."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a finetune_classifier.py output directory")
    parser.add_argument("--lora-run", default=None, help="the same task trained with --lora-rank")
    parser.add_argument("--distilled-run", default=None, help="a distill.py student of --run")
    parser.add_argument("--pruned-run", default=None, help="a prune.py output of --run")
    parser.add_argument("--validation-data", required=True, help="the file the accuracies are measured on")
    parser.add_argument("--gpt-run", default=None, help="a train_gpt.py output directory (default: a fresh GPT)")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    settings = {
        "command": reporting.command("python -m benchmarks.compression", argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, TensorFlow {tf.__version__}, Keras {keras.__version__}",
        "repeats": args.repeats,
        "new_tokens": args.new_tokens,
    }
    with tempfile.TemporaryDirectory() as directory:
        runs = {"": args.run, "LoRA-merged ": args.lora_run, "distilled ": args.distilled_run, "pruned ": args.pruned_run}
        variants = classifier_variants({prefix: run for prefix, run in runs.items() if run})
        classifier = classifier_rows(variants, args.validation_data, directory, args.repeats)
        gpt = gpt_rows(directory, args.repeats, args.new_tokens, args.gpt_run)
    report = {"settings": settings, "classifier": classifier, "gpt": gpt}
    table = markdown(classifier, gpt, settings)
    print(table)
    return reporting.write(args.output, report, table)


if __name__ == "__main__":
    main()
