"""tfllm against keras-hub, side by side: one command, a JSON file and a markdown table.

    python -m benchmarks                       # every training case; writes benchmarks/results/benchmarks.{json,md}
    python -m benchmarks --quick               # tiny sizes, a smoke test in about a minute
    python -m benchmarks --cases small --precisions float32 --xla on
    python -m benchmarks --cases generation    # also runs benchmarks.generation (its own files)

Cases (`--cases`):

- `small`: causal-LM training throughput of the small configuration (vocabulary 8192, 4 layers,
  4 heads, hidden 256, feed-forward 1024, sequence 256, batch 16) in every combination of
  `--precisions`, `--dropouts` and `--xla`;
- `gpt2`: GPT-2 small (124M) training step time at sequence 1024, batch 1;
- `bert`: BERT-base classifier fine-tuning throughput (sequence 128, batch 8, dropout 0.1)
  against keras-hub's `BertTextClassifier`;
- `generation`: runs `python -m benchmarks.generation` (greedy decoding), which writes its own
  results next to these.

Every training case trains both libraries in this process, alternately, from the same weights
on the same data (see `benchmarks.training`). The MFU is against the float32 or bfloat16
matmul peak measured at the start of the same run (`benchmarks.hardware`: the faster of
`tf.matmul` with and without XLA). Peak memory is measured per case and library in a subprocess
of its own (`benchmarks.memory`), for the float32 XLA variant of each model.

`python -m benchmarks` runs TensorFlow on its pooled CPU allocator
(`tfllm.training.use_pooled_cpu_allocator`), shared by both libraries and by the memory
subprocesses; `TF_CPU_ALLOCATOR_USE_BFC=false python -m benchmarks` measures with `malloc`.
"""

import argparse
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from benchmarks import hardware, memory, reporting, training  # noqa: E402
from tfllm.training import pooled_cpu_allocator_in_use  # noqa: E402

CASES = ("small", "gpt2", "bert", "generation")
DEFAULT_CASES = ("small", "gpt2", "bert")
DEFAULT_OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "benchmarks")


def _on_off(value):
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected 'on' or 'off', received {value!r}")
    return value == "on"


def training_cases(names, precisions, dropouts, xla, quick):
    """The `benchmarks.training.case` dicts to run, in order."""
    specs = []
    # Quick cases are tiny stand-ins; their names say so.
    prefix = "tiny " if quick else ""
    for name in names:
        if name == "small":
            config = training.TINY_GPT if quick else training.SMALL_GPT
            batch, length = (4, 32) if quick else (16, 256)
            for precision in precisions:
                for dropout in dropouts:
                    for jit in xla:
                        spec = training.case(prefix + "small", "gpt", config, batch, length, precision, dropout, jit)
                        specs.append(spec)
        elif name == "gpt2":
            config = training.TINY_GPT if quick else training.GPT2_SMALL
            length = 64 if quick else 1024
            for jit in xla:
                specs.append(training.case(prefix + "gpt2-small", "gpt", config, 1, length, "float32", 0.0, jit))
        elif name == "bert":
            config = training.TINY_BERT if quick else training.BERT_BASE
            batch, length = (4, 32) if quick else (8, 128)
            for jit in xla:
                specs.append(training.case(prefix + "bert-base", "bert", config, batch, length, "float32", 0.1, jit))
    return specs


def _steps_for(spec, args):
    """Big models get fewer steps: a GPT-2 or BERT-base step takes seconds on a CPU."""
    if args.quick or spec["name"] == "small":
        return args.steps, args.repeats, args.warmup
    return max(1, args.steps // 3), max(3, args.repeats // 2), 1


def best_xla(rows):
    """For each (case, precision, dropout), each library's fastest XLA setting and the ratio.

    Returns:
        A list of dicts: `name, precision, dropout, tfllm_tokens_per_second, tfllm_xla,
        keras_hub_tokens_per_second, keras_hub_xla, speedup` (ratio of the two best medians).
    """
    groups = {}
    for row in rows:
        key = (row["name"], row["precision"], row["dropout"])
        best = groups.setdefault(key, {})
        current = best.get(row["library"])
        if current is None or row["tokens_per_second"] > current["tokens_per_second"]:
            best[row["library"]] = row
    summary = []
    for (name, precision, dropout), best in groups.items():
        if set(best) != set(training.LIBRARIES):
            continue
        mine, theirs = best["tfllm"], best["keras-hub"]
        summary.append(
            dict(
                name=name,
                precision=precision,
                dropout=dropout,
                tfllm_tokens_per_second=mine["tokens_per_second"],
                tfllm_xla=mine["xla"],
                keras_hub_tokens_per_second=theirs["tokens_per_second"],
                keras_hub_xla=theirs["xla"],
                speedup=mine["tokens_per_second"] / theirs["tokens_per_second"],
            )
        )
    return summary


def markdown(report):
    """The results as markdown tables (all rows, best-XLA summary, memory)."""
    settings = report["settings"]
    machine = report["machine"]
    peak = report["matmul_peak_gflops"]
    lines = [
        f"`{settings['command']}` — {machine['cpu']}, {machine['cpu_count']} cores "
        f"(1-min load {machine['load_average_1min']:.1f} at start), TensorFlow {machine['tensorflow']}, "
        f"Keras {machine['keras']}, keras-hub {machine['keras_hub']}. Matmul peak measured in this run (the "
        f"best of the measurements before and after the training cases): {peak['float32']:.0f} GFLOP/s "
        f"float32, {peak['bfloat16']:.0f} GFLOP/s bfloat16 (the faster of tf.matmul with and without XLA, "
        f"{settings['matmul_size']}²). "
        f"CPU allocator, shared by both libraries: {settings.get('cpu_allocator', 'not recorded')}.",
        "",
        *(
            []
            if settings.get("complete", True)
            else ["**Partial results**: the run stopped before every case and memory measurement was done.", ""]
        ),
        "Training throughput: medians over alternating rounds after warm-up; the speed-up is the median of "
        "per-round ratios (keras-hub time / tfllm time); MFU = (6N + 12·L·H·T) × tokens/s / matmul peak of "
        "the precision; loss = mean training loss of the last round (same initial weights and batches).",
        "",
        "| case | precision | dropout | XLA | tfllm tokens/s | keras-hub tokens/s | speed-up | tfllm ms/step "
        "| keras-hub ms/step | tfllm MFU | keras-hub MFU | loss tfllm / keras-hub |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    rows = report["training"]
    pairs = {}
    for row in rows:
        pairs.setdefault((row["name"], row["precision"], row["dropout"], row["xla"]), {})[row["library"]] = row
    for (name, precision, dropout, xla), pair in pairs.items():
        mine, theirs = pair.get("tfllm"), pair.get("keras-hub")
        if mine is None or theirs is None:
            continue
        mfu = [f"{100 * r['mfu']:.0f}%" if "mfu" in r else "-" for r in (mine, theirs)]
        lines.append(
            f"| {name} (batch {mine['batch_size']}, seq {mine['sequence_length']}) | {precision} | {dropout:g} | "
            f"{'on' if xla else 'off'} | {mine['tokens_per_second']:,.0f} | {theirs['tokens_per_second']:,.0f} | "
            f"{mine['speedup_vs_keras_hub']:.2f}x | {1000 * mine['seconds_per_step']:,.0f} | "
            f"{1000 * theirs['seconds_per_step']:,.0f} | {mfu[0]} | {mfu[1]} | "
            f"{mine['final_loss']:.3f} / {theirs['final_loss']:.3f} |"
        )
    if report["best_xla"]:
        lines += [
            "",
            "Each library at its best XLA setting:",
            "",
            "| case | precision | dropout | tfllm tokens/s (XLA) | keras-hub tokens/s (XLA) | tfllm / keras-hub |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for row in report["best_xla"]:
            lines.append(
                f"| {row['name']} | {row['precision']} | {row['dropout']:g} | "
                f"{row['tfllm_tokens_per_second']:,.0f} ({'on' if row['tfllm_xla'] else 'off'}) | "
                f"{row['keras_hub_tokens_per_second']:,.0f} ({'on' if row['keras_hub_xla'] else 'off'}) | "
                f"{row['speedup']:.2f}x |"
            )
    if report["memory"]:
        lines += [
            "",
            "Peak memory (resident set, VmHWM) of a process that imports both libraries, then builds, compiles and "
            f"trains one model for {settings['memory_steps']} steps; in brackets the growth over the RSS after "
            "the imports:",
            "",
            "| case | precision | XLA | tfllm MiB | keras-hub MiB |",
            "|---|---|---|---:|---:|",
        ]
        for entry in report["memory"]:
            mine, theirs = entry["tfllm"], entry["keras-hub"]
            lines.append(
                f"| {entry['name']} | {entry['precision']} | {'on' if entry['xla'] else 'off'} | "
                f"{mine['peak_rss_mib']:,.0f} (+{mine['peak_over_imports_mib']:,.0f}) | "
                f"{theirs['peak_rss_mib']:,.0f} (+{theirs['peak_over_imports_mib']:,.0f}) |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(DEFAULT_CASES))
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=["float32", "mixed_bfloat16"],
        help="default: both (float32 only with --quick)",
    )
    parser.add_argument("--dropouts", nargs="+", type=float, help="default: 0 and 0.1 (0 only with --quick)")
    parser.add_argument("--xla", nargs="+", type=_on_off, help="'on', 'off' or both (default: both; on with --quick)")
    parser.add_argument("--steps", type=int, default=3, help="training steps per library per round")
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds (medians over these)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (compiles)")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory subprocesses")
    parser.add_argument("--memory-steps", type=int, default=3)
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--quick", action="store_true", help="tiny models and few steps: a smoke test")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="path without extension: writes .json and .md")
    args = parser.parse_args(argv)
    if args.precisions is None:
        args.precisions = ["float32"] if args.quick else ["float32", "mixed_bfloat16"]
    if args.dropouts is None:
        args.dropouts = [0.0] if args.quick else [0.0, 0.1]
    if args.xla is None:
        args.xla = [True] if args.quick else [True, False]
    if args.quick:
        args.steps, args.repeats, args.warmup = 1, 2, 1
        args.memory_steps = 1
        args.matmul_size = min(args.matmul_size, 512)
    for name in ("steps", "repeats", "warmup", "memory_steps", "matmul_size"):
        if getattr(args, name) < (0 if name == "warmup" else 1):
            raise ValueError(f"`--{name.replace('_', '-')}` must be positive. Received: {getattr(args, name)}")

    command = reporting.command("python -m benchmarks", argv)
    machine = hardware.describe()
    allocator = (
        "pooled (TF_CPU_ALLOCATOR_USE_BFC)" if pooled_cpu_allocator_in_use() else "malloc (TensorFlow's default)"
    )
    peak = hardware.matmul_peak(args.matmul_size)
    peak_runs = [dict(peak)]
    print(f"matmul peak: {peak['float32']:.0f} GFLOP/s float32, {peak['bfloat16']:.0f} GFLOP/s bfloat16", flush=True)

    specs = training_cases(args.cases, args.precisions, args.dropouts, args.xla, args.quick)
    rows, memory_rows = [], []
    started = time.perf_counter()
    output = os.path.splitext(args.output)[0]

    def write(complete):
        """Writes what has been measured so far (a long run that is stopped keeps its results)."""
        report = dict(
            settings=dict(
                command=command,
                quick=args.quick,
                steps=args.steps,
                repeats=args.repeats,
                warmup=args.warmup,
                memory_steps=args.memory_steps,
                matmul_size=args.matmul_size,
                cpu_allocator=allocator,
                optimizer=f"AdamW(learning_rate={training.LEARNING_RATE}, weight_decay={training.WEIGHT_DECAY})",
                loss="tfllm: tfllm.training.SparseCrossEntropy(); keras-hub: SparseCategoricalCrossentropy(from_logits=True)",
                seconds=time.perf_counter() - started,
                complete=complete,
            ),
            machine=machine,
            matmul_peak_gflops=peak,
            matmul_peak_measurements=peak_runs,
            training=rows,
            best_xla=best_xla(rows),
            memory=memory_rows,
        )
        reporting.write(output, report, markdown(report))
        return report

    # Memory first: this process's allocator pool keeps the peak of every case it has trained
    # (about 20 GB after BERT-base), and a GPT-2 subprocess on top of that can exhaust the machine.
    if args.memory:
        seen = set()
        for spec in specs:
            # One measurement per model: float32, and XLA on unless only off was asked for.
            if spec["name"] in seen or spec["precision"] != "float32" or spec["xla"] != (True in args.xla):
                continue
            seen.add(spec["name"])
            entry = dict(name=spec["name"], precision=spec["precision"], xla=spec["xla"])
            for library in training.LIBRARIES:
                entry[library] = memory.measure_in_subprocess(spec, library, args.memory_steps)
            print(
                f"memory {spec['name']}: "
                + ", ".join(f"{lib} {entry[lib]['peak_rss_mib']:.0f} MiB" for lib in training.LIBRARIES),
                flush=True,
            )
            memory_rows.append(entry)
            write(complete=False)

    for spec in specs:
        steps, repeats, warmup = _steps_for(spec, args)
        results = training.time_pair(spec, steps, repeats, warmup, matmul_peak=peak)
        training.print_result(results)
        rows += results
        write(complete=False)
    if rows:
        # The load of a shared machine changes during a long run: keep the best peak seen.
        again = hardware.matmul_peak(args.matmul_size)
        print(f"matmul peak after the training cases: {again['float32']:.0f} GFLOP/s float32, "
              f"{again['bfloat16']:.0f} GFLOP/s bfloat16", flush=True)
        peak_runs.append(again)
        peak.update({dtype: max(run[dtype] for run in peak_runs) for dtype in peak})
        for row in rows:
            dtype = "bfloat16" if row["precision"] == "mixed_bfloat16" else "float32"
            row["mfu"] = row["achieved_gflops"] / peak[dtype]
        write(complete=False)

    report = write(complete=True)
    print(f"wrote {output}.json and {output}.md", flush=True)

    if "generation" in args.cases:
        generation_argv = ["--repeats", "2", "--batch-sizes", "1", "--new-tokens", "16"] if args.quick else []
        generation_output = os.path.join(os.path.dirname(os.path.abspath(output)), "generation")
        subprocess.run(
            [sys.executable, "-m", "benchmarks.generation", "--output", generation_output] + generation_argv,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            check=True,
        )
    return report


if __name__ == "__main__":
    main()
