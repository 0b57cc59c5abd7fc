"""Whether unstructured (magnitude) pruning could buy speed: one feed-forward product of
all-MiniLM-L6-v2 (`(rows, 384) @ (384, 1536)`, 128 rows: a batch of 8 sentences of 16 tokens),
as TensorFlow's dense matmul and as its sparse-dense matmul with a random half or nine tenths
of the kernel's entries removed. The variants run alternately; medians.

    python -m benchmarks.sparsity        # benchmarks/results/sparsity.{json,md}
"""

import argparse
import os
import platform
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import reporting  # noqa: E402
from benchmarks.export import alternate  # noqa: E402

DEFAULT_OUTPUT = os.path.join(os.path.dirname(__file__), "results", "sparsity")


def products(rows, sparsities, seed=0):
    """`{name: function}`: the dense product and one sparse-dense product per sparsity."""
    rng = np.random.default_rng(seed)
    inputs = tf.constant(rng.normal(size=(rows, 384)).astype("float32"))
    kernel = rng.normal(size=(384, 1536)).astype("float32")
    dense = tf.constant(kernel)
    methods = {"dense": tf.function(lambda: tf.matmul(inputs, dense))}
    for sparsity in sparsities:
        # `sparse_dense_matmul` takes the sparse operand first: (kernel^T @ inputs^T)^T.
        sparse = tf.sparse.from_dense(tf.constant((kernel * (rng.random(kernel.shape) >= sparsity)).T))
        methods[f"sparse {sparsity:.0%}"] = tf.function(
            lambda sparse=sparse: tf.transpose(tf.sparse.sparse_dense_matmul(sparse, inputs, adjoint_b=True))
        )
    return methods


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    methods = products(args.rows, (0.5, 0.9))
    for method in methods.values():
        method()
    times = alternate(methods, args.repeats)
    baseline = statistics.median(times["dense"])
    rows = [
        dict(variant=name, microseconds=1e6 * statistics.median(seconds), vs_dense=statistics.median(seconds) / baseline)
        for name, seconds in times.items()
    ]
    settings = {
        "command": reporting.command("python -m benchmarks.sparsity", argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, TensorFlow {tf.__version__}",
        "rows": args.rows,
        "repeats": args.repeats,
    }
    lines = ["| product | microseconds (x dense) |", "|---|---|"]
    lines += [f"| {row['variant']} | {row['microseconds']:.0f} ({row['vs_dense']:.1f}) |" for row in rows]
    lines += ["", f"`{settings['command']}` on {settings['machine']}, {args.repeats} alternating repeats, medians."]
    table = "\n".join(lines) + "\n"
    print(table)
    return reporting.write(args.output, {"settings": settings, "products": rows}, table)


if __name__ == "__main__":
    main()
