"""GPT-2 small training on a GPU with Keras on JAX: tfllm against keras-hub, with nanoGPT's MFU.

    KERAS_BACKEND=jax python -m benchmarks.gpu

The accelerator case of the training benchmark, made for a machine that has JAX but no
TensorFlow (nothing here imports it): GPT-2 small (124M parameters, 12 layers, 12 heads, hidden
768, vocabulary padded from 50257 to 50304 as nanoGPT pads it) trained at batch 12, sequence
1024, `mixed_bfloat16`, no dropout, AdamW, each library's cross-entropy on logits. Both models
start from the same weights and train alternately in this process on the same batches, with
`benchmarks.training.time_pair`: per-round medians after a warm-up that compiles. tfllm runs
twice, each time against keras-hub: with its own attention (causal blocks of 128 queries) and
with `fused_attention=True` (`keras.ops.dot_product_attention`: cuDNN's flash attention on an
NVIDIA GPU); `--attention` picks one.

It reports ms/iteration, tokens/s and model FLOPs utilisation as nanoGPT's `estimate_mfu`
counts it (6N + 12·L·H·T FLOPs per token) against a datasheet peak, by default the H100's (and
H200's) 989 TFLOP/s of dense bfloat16, and also against the bfloat16 matmul rate measured on
the device in the same run (an 8192³ product). Then it profiles 3 more steps of each model
(`--profile-steps`) with `jax.profiler` and sums the GPU's kernels from the trace: the time a
step keeps the GPU busy, by kind (matrix products, cuDNN attention, reductions, element-wise
fusions, copies) and the top kernels. Writes `<output>.json` and `<output>.md`.

`--quick` trains a tiny GPT for a few steps instead: the same code path in seconds, on any
JAX device (the tests run it on a CPU).
"""

import argparse
import collections
import glob
import gzip
import json
import os
import platform
import re
import statistics
import tempfile
import time

import keras

from benchmarks import reporting, training

DEFAULT_OUTPUT = os.path.join("benchmarks", "results", "gpu")
# GPT-2 small with nanoGPT's padded vocabulary (a multiple of 64).
GPT2_PADDED = dict(training.GPT2_SMALL, vocabulary_size=50304)
BATCH_SIZE = 12
SEQUENCE_LENGTH = 1024
# Dense bfloat16 tensor-core peak of the H100 SXM; the H200 has the same compute.
H100_BF16_TFLOPS = 989.0


def matmul_tflops(size=8192, dtype="bfloat16", repeats=10):
    """The median rate of `repeats` jitted `(size, size) @ (size, size)` products, in TFLOP/s."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(1), (size, size), dtype)
    b = jax.random.normal(jax.random.key(2), (size, size), dtype)
    matmul = jax.jit(jnp.matmul)
    for _ in range(3):  # warm-up: compiles, and clocks come up
        matmul(a, b).block_until_ready()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).block_until_ready()
        seconds.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(seconds) / 1e12


def describe():
    """The device, the host and the library versions."""
    import jax
    import keras_hub

    devices = jax.devices()
    return dict(
        device=devices[0].device_kind,
        platform=devices[0].platform,
        device_count=len(devices),
        cpu_count=os.cpu_count(),
        python=platform.python_version(),
        jax=jax.__version__,
        keras=keras.__version__,
        keras_hub=keras_hub.__version__,
        keras_backend=keras.backend.backend(),
    )


# Kernel categories by name, tried in this order (cuDNN's attention kernels also name wgmma).
KERNEL_CATEGORIES = (
    ("attention (cuDNN)", re.compile(r"sdpa|fmha|flash|attention|cudnn")),
    ("matrix products", re.compile(r"gemm|xmma|cutlass|cublas|nvjet|matmul|wgmma|dot")),
    ("copies", re.compile(r"memcpy|memset|copy|transpose")),
    ("reductions", re.compile(r"reduce|reduction")),
    ("element-wise and other fusions", re.compile(r"fusion|loop|elementwise|wrapped|convert")),
)


def kernel_category(name):
    """The category of a device kernel, from its name."""
    lowered = name.lower()
    for category, pattern in KERNEL_CATEGORIES:
        if pattern.search(lowered):
            return category
    return "other"


def kernel_summary(trace_path, steps, top=12):
    """Where the device's time went in a profiler trace of `steps` training steps.

    Reads the Chrome-format `*.trace.json.gz` that `jax.profiler.trace` writes and keeps the
    kernels on the GPU's streams (threads named `Stream ...` of a `/device:GPU:...` process;
    the trace's derived `XLA Ops` lines repeat them and are left out).

    Returns:
        A dict: `kernels_per_step`, `busy_ms_per_step` (the union of the kernels' intervals),
        `span_ms_per_step` (first kernel's start to last kernel's end), `categories`
        (`{category: ms per step}`) and the `top` kernels by time (`name`, `category`,
        `ms_per_step`, `launches_per_step`, `share` of the summed kernel time); only
        `kernels_per_step` (0) where the trace holds no GPU kernels (a CPU run).
    """
    with gzip.open(trace_path, "rt") as file:
        events = json.load(file)["traceEvents"]
    names = collections.defaultdict(dict)  # "process_name" / "thread_name": {key: name}
    for event in events:
        if event.get("ph") == "M" and event.get("name") in ("process_name", "thread_name"):
            key = event["pid"] if event["name"] == "process_name" else (event["pid"], event.get("tid"))
            names[event["name"]][key] = event.get("args", {}).get("name", "")
    devices = {pid for pid, name in names["process_name"].items() if name.startswith("/device:GPU")}
    kernels = [
        event
        for event in events
        if event.get("ph") == "X"
        and event.get("pid") in devices
        and names["thread_name"].get((event["pid"], event.get("tid")), "").startswith("Stream")
    ]
    if not kernels:
        return dict(kernels_per_step=0)
    # Times in the trace are microseconds.
    busy, covered_until = 0.0, float("-inf")
    for start, end in sorted((event["ts"], event["ts"] + event.get("dur", 0)) for event in kernels):
        busy += max(0.0, end - max(start, covered_until))
        covered_until = max(covered_until, end)
    span = max(event["ts"] + event.get("dur", 0) for event in kernels) - min(event["ts"] for event in kernels)
    time_by_name, launches = collections.Counter(), collections.Counter()
    for event in kernels:
        time_by_name[event["name"]] += event.get("dur", 0)
        launches[event["name"]] += 1
    total = sum(time_by_name.values())
    categories = collections.Counter()
    for name, microseconds in time_by_name.items():
        categories[kernel_category(name)] += microseconds / 1000 / steps
    return dict(
        kernels_per_step=len(kernels) / steps,
        busy_ms_per_step=busy / 1000 / steps,
        span_ms_per_step=span / 1000 / steps,
        categories=dict(categories.most_common()),
        top=[
            dict(
                name=name,
                category=kernel_category(name),
                ms_per_step=microseconds / 1000 / steps,
                launches_per_step=launches[name] / steps,
                share=microseconds / total,
            )
            for name, microseconds in time_by_name.most_common(top)
        ],
    )


def profiler(steps):
    """A `training.time_pair` profile callback: each library's next `steps` steps under JAX's profiler."""

    def profile(trainers):
        import jax

        summaries = {}
        for library, trainer in trainers.items():
            with tempfile.TemporaryDirectory() as directory:
                try:
                    with jax.profiler.trace(directory):
                        trainer.run(steps)  # returns once the steps' losses are read: the device is done
                    (path,) = glob.glob(os.path.join(directory, "plugins", "profile", "*", "*.trace.json.gz"))
                    summaries[library] = dict(steps=steps, **kernel_summary(path, steps))
                except Exception as error:  # noqa: BLE001 - the timings stand without the profile
                    summaries[library] = dict(steps=steps, error=f"{type(error).__name__}: {error}")
                    print(f"profile of {library} failed: {summaries[library]['error']}", flush=True)
        return summaries

    return profile


def markdown(report):
    settings, machine = report["settings"], report["machine"]
    lines = [
        f"`{settings['command']}` — {machine['device']} ({machine['platform']}), JAX {machine['jax']}, "
        f"Keras {machine['keras']}, keras-hub {machine['keras_hub']}. "
        f"{'bfloat16' if settings['precision'] == 'mixed_bfloat16' else 'float32'} matmul measured in this run "
        f"({settings['matmul_size']}³, median of 10): "
        f"{report['measured_matmul_tflops']:.0f} TFLOP/s; datasheet peak used for MFU: "
        f"{settings['peak_tflops']:.0f} TFLOP/s.",
        "",
        f"{report['case']}: {settings['steps']} steps per round, medians over {settings['repeats']} alternating "
        f"rounds after {settings['warmup']} warm-up steps; MFU = (6N + 12·L·H·T) × tokens/s / peak; "
        "speed-up = median of per-round ratios (keras-hub time / tfllm time).",
        "",
        *(["**Partial results**: the run stopped before its last pair.", ""] if not settings.get("complete") else []),
        "| pair | library | ms/iter | tokens/s | MFU (datasheet peak) | MFU (measured matmul) | speed-up | loss |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["training"]:
        lines.append(
            f"| {row['pair']} | {_library_label(row)} | {row['seconds_per_step'] * 1000:.1f} | {row['tokens_per_second']:,.0f} | "
            f"{row['mfu']:.1%} | {row['mfu_measured']:.1%} | {row['speedup_vs_keras_hub']:.2f}x | "
            f"{row['final_loss']:.3f} |"
        )
    for row in report["training"]:
        if "profile" in row:
            lines += ["", *profile_markdown(row)]
    return "\n".join(lines) + "\n"


def profile_markdown(row):
    """The profile of one row's library as markdown lines: categories, then the top kernels."""
    profile, library = row["profile"], _library_label(row)
    heading = f"Profile, pair {row['pair']}, {library}, {profile['steps']} steps under `jax.profiler`"
    if "error" in profile:
        return [f"{heading}: failed ({profile['error']})."]
    if not profile["kernels_per_step"]:
        return [f"{heading}: no GPU kernels in the trace (not a GPU run)."]
    lines = [
        f"{heading}: {profile['kernels_per_step']:.0f} kernels a step, the GPU busy "
        f"{profile['busy_ms_per_step']:.1f} ms a step (the timed step: {row['seconds_per_step'] * 1000:.1f} ms; "
        f"first to last kernel {profile['span_ms_per_step']:.1f} ms a step).",
        "",
        "| kernels | ms/step |",
        "|---|---:|",
        *(f"| {category} | {ms:.2f} |" for category, ms in profile["categories"].items()),
        "",
        "| kernel | category | ms/step | launches/step | share |",
        "|---|---|---:|---:|---:|",
    ]
    for kernel in profile["top"]:
        name = kernel["name"] if len(kernel["name"]) <= 70 else kernel["name"][:67] + "..."
        lines.append(
            f"| `{name}` | {kernel['category']} | {kernel['ms_per_step']:.2f} | "
            f"{kernel['launches_per_step']:.0f} | {kernel['share']:.1%} |"
        )
    return lines


def _library_label(row):
    if row["library"] == "tfllm" and row["tfllm_options"].get("fused_attention"):
        return "tfllm (fused attention)"
    return row["library"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="training steps per library per round")
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds (medians over these)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (the first compiles)")
    parser.add_argument("--precision", default="mixed_bfloat16", choices=("mixed_bfloat16", "float32"))
    parser.add_argument(
        "--peak-tflops", type=float, default=H100_BF16_TFLOPS, help="the MFU's peak (default: H100 dense bf16)"
    )
    parser.add_argument("--matmul-size", type=int, help="side of the measured bf16 matmul (default 8192; 256 with --quick)")
    parser.add_argument(
        "--attention", choices=("blocks", "fused", "both"), default="both", help="tfllm's attention (default: both)"
    )
    parser.add_argument(
        "--profile-steps",
        type=int,
        default=3,
        help="after the timed rounds, profile this many more steps of each model (0: none)",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny GPT for a few steps: a smoke test")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="path without extension: writes .json and .md")
    args = parser.parse_args(argv)
    if keras.backend.backend() != "jax":
        raise SystemExit(f"benchmarks.gpu runs Keras on JAX: set KERAS_BACKEND=jax (now {keras.backend.backend()!r}).")
    if min(args.steps, args.repeats) < 1 or args.warmup < 1 or args.profile_steps < 0:
        raise SystemExit(
            "--steps and --repeats must be at least 1, --warmup at least 1 (it compiles), --profile-steps at least 0."
        )

    name, config, batch_size, length = ("tiny gpt2", training.TINY_GPT, 2, 32) if args.quick else (
        "gpt2-small", GPT2_PADDED, BATCH_SIZE, SEQUENCE_LENGTH
    )
    variants = ["blocks", "fused"] if args.attention == "both" else [args.attention]
    specs = [
        training.case(
            name, "gpt", config, batch_size, length, args.precision, tfllm_options={"fused_attention": v == "fused"}
        )
        for v in variants
    ]
    if args.matmul_size is None:
        args.matmul_size = 256 if args.quick else 8192
    peak_dtype = "bfloat16" if args.precision == "mixed_bfloat16" else "float32"
    measured = matmul_tflops(args.matmul_size, peak_dtype)
    started = time.perf_counter()
    report = dict(
        case=(
            f"{name} (vocabulary {config['vocabulary_size']}, batch {batch_size}, seq {length}, "
            f"{args.precision}, dropout 0)"
        ),
        settings=dict(
            command=reporting.command("KERAS_BACKEND=jax python -m benchmarks.gpu", argv),
            steps=args.steps,
            repeats=args.repeats,
            warmup=args.warmup,
            precision=args.precision,
            attention=variants,
            peak_tflops=args.peak_tflops,
            matmul_size=args.matmul_size,
            profile_steps=args.profile_steps,
        ),
        machine=describe(),
        measured_matmul_tflops=measured,
        training=[],
    )
    for pair, pair_spec in enumerate(specs, 1):
        results = training.time_pair(
            pair_spec,
            args.steps,
            args.repeats,
            args.warmup,
            matmul_peak={peak_dtype: args.peak_tflops * 1e3},
            profile=profiler(args.profile_steps) if args.profile_steps else None,
        )
        for row in results:
            row["pair"] = pair
            row["mfu_measured"] = row["achieved_gflops"] / (measured * 1e3)
        report["training"] += results
        report["settings"]["seconds"] = time.perf_counter() - started
        report["settings"]["complete"] = pair == len(specs)
        # Written after each pair: a device's time is short, and a failing pair keeps the others.
        table = markdown(report)
        reporting.write(args.output, report, table)
    print(table)
    return report


if __name__ == "__main__":
    main()
