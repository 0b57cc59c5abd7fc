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

import tensorflow as tf  # noqa: E402

import tfllm  # noqa: E402
from benchmarks import profiling  # noqa: E402
from benchmarks.export import DATA, GPT_CONFIG  # noqa: E402
from tfllm.tokenizers import BytePairTokenizer  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()

    with open(os.path.join(DATA, "tinyshakespeare.txt"), encoding="utf-8") as file:
        text = file.read()
    tokenizer = BytePairTokenizer.train([text], vocabulary_size=8192)
    model = tfllm.models.GPT(vocabulary_size=tokenizer.vocabulary_size(), **GPT_CONFIG)
    directory = tempfile.mkdtemp()
    path = tfllm.export.export_gpt(
        model, tokenizer, os.path.join(directory, "gpt"), max_new_tokens=args.new_tokens, stop_token_ids=[],
        models_config=False,
    )
    generate = tf.saved_model.load(path).signatures["generate"]
    rows = args.batch
    inputs = dict(
        prompt=tf.constant([text[i * 1000 : i * 1000 + 60] for i in range(rows)]),
        max_new_tokens=tf.fill([rows], args.new_tokens),
        temperature=tf.zeros([rows]),
        top_k=tf.zeros([rows], tf.int32),
        top_p=tf.ones([rows]),
        seed=tf.zeros([rows], tf.int32),
    )
    for _ in range(3):
        generate(**inputs)
    start = time.perf_counter()
    generate(**inputs)
    print(f"batch {rows}, {args.new_tokens} new tokens: {1000 * (time.perf_counter() - start):.0f} ms unprofiled")

    times = profiling.profile(lambda: generate(**inputs))
    print("\n".join(profiling.table(times, args.top)))


if __name__ == "__main__":
    main()
