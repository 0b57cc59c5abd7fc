"""Where the exported GPT `generate` signature spends its time: a per-op profile.

Exports the generation benchmark's GPT (4 layers, 256 wide, a byte-level BPE of 8192 trained on
Tiny Shakespeare), warms the `generate` signature up, runs it once under `tf.profiler` and
prints the TensorFlow kernels that took the most time, summed over the executor's threads:

    python -m benchmarks.profile_export --batch 1
    python -m benchmarks.profile_export --batch 8 --top 20
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from benchmarks import profiling  # noqa: E402
from benchmarks.export import exported_gpt, greedy_inputs  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()

    text, _, _, generate = exported_gpt(tempfile.mkdtemp(), args.new_tokens)
    rows = args.batch
    inputs = greedy_inputs([text[i * 1000 : i * 1000 + 60] for i in range(rows)], args.new_tokens)
    for _ in range(3):
        generate(**inputs)
    start = time.perf_counter()
    generate(**inputs)
    print(f"batch {rows}, {args.new_tokens} new tokens: {1000 * (time.perf_counter() - start):.0f} ms unprofiled")

    times = profiling.profile(lambda: generate(**inputs))
    print("\n".join(profiling.table(times, args.top)))


if __name__ == "__main__":
    main()
