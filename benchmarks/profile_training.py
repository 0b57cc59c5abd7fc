"""Where a training step's time goes: a per-op profile of tfllm and keras-hub side by side.

Builds the benchmark's small causal-LM case for both libraries (the same weights, the same
batch, the same loss and optimizer as `python -m benchmarks`), runs a few warm-up steps,
times some more, then runs one step of each under `tf.profiler` and prints the op types that
took the most kernel time. The plain graph (`--no-xla`, the default) shows every op; an XLA
step shows as a few cluster ops:

    python -m benchmarks.profile_training
    python -m benchmarks.profile_training --precision mixed_bfloat16 --dropout 0.1 --top 20
"""

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from benchmarks import profiling, training  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--xla", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per library")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="the tiny stand-in for the small case")
    args = parser.parse_args(argv)

    config, batch, length = (training.TINY_GPT, 4, 32) if args.quick else (training.SMALL_GPT, 16, 256)
    spec = training.case("small", "gpt", config, batch, length, args.precision, args.dropout, args.xla)
    models = training.build_pair(spec)
    inputs, targets = training.make_batches(spec, num_batches=1)[0]
    print(
        f"small causal LM (batch {batch}, seq {length}), {args.precision}, dropout {args.dropout:g}, "
        f"XLA {'on' if args.xla else 'off'}"
    )
    for name, model in models.items():
        for _ in range(3):  # warm-up, which compiles
            model.train_on_batch(inputs, targets)
        start = time.perf_counter()
        for _ in range(args.steps):
            model.train_on_batch(inputs, targets)
        milliseconds = 1000 * (time.perf_counter() - start) / args.steps
        times = profiling.profile(lambda: model.train_on_batch(inputs, targets))
        print(f"\n{name}: {milliseconds:.0f} ms/step unprofiled")
        print("\n".join(profiling.table(times, args.top)))


if __name__ == "__main__":
    from tfllm.training import use_pooled_cpu_allocator

    use_pooled_cpu_allocator()  # as `python -m benchmarks` does
    main()
