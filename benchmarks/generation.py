"""Greedy generation speed: tfllm against keras-hub's `GPT2CausalLM.generate`, same weights.

Both run the same GPT-2-architecture model (the tfllm model's weights copied into a keras-hub
`GPT2Backbone`), with XLA on for both, on the same random prompts. The benchmark first checks
that both produce the same greedy tokens, then times the two (and tfllm without XLA, the
TF Serving mode) alternately in one process, after a warm-up. It reports the median of
several runs as new tokens per second, and the speed-up over keras-hub as the median of the
per-repeat speed-ups (each repeat times every method moments apart, so load that comes and
goes on a shared machine cancels out).

    python -m benchmarks.generation                 # writes benchmarks/results/generation.{json,md}
    python -m benchmarks.generation --repeats 9 --batch-sizes 1 8 --output /tmp/generation
"""

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import reporting  # noqa: E402
from tfllm.generation import generate  # noqa: E402
from tfllm.models import GPT  # noqa: E402

CONFIG = dict(
    vocabulary_size=8192,
    num_layers=4,
    num_heads=4,
    hidden_dim=256,
    intermediate_dim=1024,
    max_sequence_length=256,
    dropout=0.0,
)
DEFAULT_OUTPUT = os.path.join(os.path.dirname(__file__), "results", "generation")


def keras_hub_copy(model):
    """A keras-hub `GPT2CausalLM` (no preprocessor) holding `model`'s weights.

    tfllm's fused query/key/value kernel `(hidden, 3 * hidden)` is laid out
    `[query | key | value]`, each head-major, so it splits into keras-hub's three
    `(hidden, heads, head_dim)` einsum kernels by a reshape.
    """
    config = {key: CONFIG[key] for key in CONFIG}
    backbone = keras_hub.models.GPT2Backbone(**config)
    heads, hidden = config["num_heads"], config["hidden_dim"]
    head_dim = hidden // heads
    backbone.token_embedding.embeddings.assign(model.token_embedding.embeddings)
    backbone.position_embedding.position_embeddings.assign(model.position_embedding.embeddings)
    for block, target in zip(model.transformer_blocks, backbone.transformer_layers, strict=True):
        attention = target._self_attention_layer
        kernel = keras.ops.convert_to_numpy(block.qkv_dense.kernel).reshape(hidden, 3, heads, head_dim)
        bias = keras.ops.convert_to_numpy(block.qkv_dense.bias).reshape(3, heads, head_dim)
        for j, dense in enumerate([attention._query_dense, attention._key_dense, attention._value_dense]):
            dense.kernel.assign(kernel[:, j])
            dense.bias.assign(bias[j])
        output_kernel = keras.ops.convert_to_numpy(block.attention_output_dense.kernel)
        attention._output_dense.kernel.assign(output_kernel.reshape(heads, head_dim, hidden))
        attention._output_dense.bias.assign(block.attention_output_dense.bias)
        target._self_attention_layer_norm.set_weights(block.attention_layer_norm.get_weights())
        target._feedforward_layer_norm.set_weights(block.feedforward_layer_norm.get_weights())
        target._feedforward_intermediate_dense.set_weights(block.feedforward_intermediate_dense.get_weights())
        target._feedforward_output_dense.set_weights(block.feedforward_output_dense.get_weights())
    backbone.layer_norm.set_weights(model.final_layer_norm.get_weights())
    causal_lm = keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)
    causal_lm.compile(sampler="greedy", jit_compile=True)
    if causal_lm.jit_compile is not True:
        raise RuntimeError("keras-hub's generate did not get XLA; the comparison would be unfair.")
    return causal_lm


def run(batch_sizes=(1, 8), prompt_length=16, new_tokens=128, repeats=7, seed=0):
    keras.utils.set_random_seed(seed)
    model = GPT(**CONFIG)
    causal_lm = keras_hub_copy(model)
    results = []
    for batch_size in batch_sizes:
        prompts = np.random.default_rng(seed).integers(1, CONFIG["vocabulary_size"], (batch_size, prompt_length))
        prompts = prompts.astype("int32")
        total = prompt_length + new_tokens
        keras_hub_inputs = {
            "token_ids": np.pad(prompts, ((0, 0), (0, new_tokens))),
            "padding_mask": np.arange(total)[None, :].repeat(batch_size, 0) < prompt_length,
        }
        methods = {
            "keras-hub (XLA)": lambda: causal_lm.generate(keras_hub_inputs, stop_token_ids=None)["token_ids"],
            "tfllm (XLA)": lambda: generate(model, prompts, new_tokens, jit_compile=True),
            "tfllm (graph, no XLA)": lambda: generate(model, prompts, new_tokens, jit_compile=False),
        }
        # Warm-up (compiles) and the check that every method gives the same tokens.
        outputs = {name: np.asarray(method()) for name, method in methods.items()}
        reference = outputs["keras-hub (XLA)"]
        for name, output in outputs.items():
            if not np.array_equal(output, reference):
                mismatch = np.argwhere(output != reference)[0]
                raise RuntimeError(f"{name} differs from keras-hub's greedy tokens first at (row, position) {mismatch}")

        times = {name: [] for name in methods}
        names = list(methods)
        for repeat in range(repeats):
            # Rotate the order so that no method always runs first after the others.
            for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
                start = time.perf_counter()
                methods[name]()
                times[name].append(time.perf_counter() - start)
        baseline = times["keras-hub (XLA)"]
        for name in names:
            median = statistics.median(times[name])
            # The speed-up within each repeat (keras-hub's time over this method's, measured
            # moments apart), then the median: robust to load that changes between repeats.
            speedups = [reference / seconds for reference, seconds in zip(baseline, times[name])]
            speedup = statistics.median(speedups)
            results.append(
                dict(
                    batch_size=batch_size,
                    method=name,
                    median_seconds=median,
                    new_tokens_per_second=batch_size * new_tokens / median,
                    speedup_vs_keras_hub=speedup,
                    speedups=speedups,
                    seconds=times[name],
                )
            )
            print(
                f"batch {batch_size:>2}  {name:<24} {batch_size * new_tokens / median:>8.0f} new tokens/s  "
                f"x{speedup:.2f} (per-repeat speed-ups {min(speedups):.2f}-{max(speedups):.2f})",
                flush=True,
            )
    return results


def markdown(results, settings):
    lines = [
        f"Greedy generation, {settings['prompt_length']}-token prompts + {settings['new_tokens']} new tokens, "
        f"float32, model {CONFIG}; medians of {settings['repeats']} alternating runs "
        f"(`{settings['command']}`, {settings['machine']}).",
        "",
        "| batch | method | new tokens/s | speed-up vs keras-hub (median of per-run ratios) |",
        "|---:|---|---:|---:|",
    ]
    for row in results:
        lines.append(
            f"| {row['batch_size']} | {row['method']} | {row['new_tokens_per_second']:,.0f} | "
            f"{row['speedup_vs_keras_hub']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="path without extension: writes .json and .md")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--prompt-length", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--threads", type=int, default=None, help="TensorFlow intra-op threads for both sides (default: TF's choice)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)

    results = run(args.batch_sizes, args.prompt_length, args.new_tokens, args.repeats)
    settings = dict(
        prompt_length=args.prompt_length,
        new_tokens=args.new_tokens,
        repeats=args.repeats,
        command=reporting.command("python -m benchmarks.generation", argv),
        threads=args.threads or "default",
        machine=f"{platform.machine()}, {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}, keras-hub {keras_hub.__version__}",
    )
    report = dict(settings=settings, config=CONFIG, results=results)
    output = reporting.write(args.output, report, markdown(results, settings))
    print(f"wrote {output}.json and {output}.md")


if __name__ == "__main__":
    main()
