"""The matrix products of one training step, each timed alone under XLA: a floor under the step.

A causal-LM training step is mostly matrix products: every dense layer's forward product and
its two gradients, the attention products (two forward, four backward), and the tied logits
product with its two gradients. This times each distinct product of the small case alone,
compiled with XLA, multiplies by how often the step runs it, and adds them up, for each
library's structure: tfllm's fused QKV projection and causal attention in blocks of
`attention_block_size` queries, keras-hub's separate query, key and value projections and its
full square of scores. Then it times both libraries' whole XLA steps, alternating, in the same
process (as `python -m benchmarks` does). What a step takes beyond its products is the rest
(element-wise work, reductions, the optimizer, the loss); and keras-hub's step over tfllm's
products alone is the most any change outside the products could bring tfllm:

    python -m benchmarks.step_products
    python -m benchmarks.step_products --quick     # tiny shapes, seconds
"""

import argparse
import collections
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import kernels, training  # noqa: E402

Product = collections.namedtuple("Product", "kind lhs rhs transpose_a transpose_b")


def dense(tokens, fan_in, fan_out):
    """A dense layer's forward product and its gradients to the input and to the kernel."""
    return [
        Product("dense forward", (tokens, fan_in), (fan_in, fan_out), False, False),
        Product("dense input gradient", (tokens, fan_out), (fan_in, fan_out), False, True),
        Product("dense kernel gradient", (tokens, fan_in), (tokens, fan_out), True, False),
    ]


def attention(rows, queries, keys, head_dim):
    """Scores and output for `queries` against `keys`, and their four gradients."""
    q, k, p = (rows, queries, head_dim), (rows, keys, head_dim), (rows, queries, keys)
    return [
        Product("attention q·kᵀ", q, k, False, True),
        Product("attention p·v", p, k, False, False),
        Product("attention dO·vᵀ", q, k, False, True),
        Product("attention pᵀ·dO", p, q, True, False),
        Product("attention dS·k", p, k, False, False),
        Product("attention dSᵀ·q", p, q, True, False),
    ]


def step_products(config, batch, length, library, attention_block_size=128):
    """`Counter({Product: times per step})` for one causal-LM training step of `library`."""
    tokens, hidden, heads = batch * length, config["hidden_dim"], config["num_heads"]
    rows, head_dim = batch * heads, hidden // heads
    layer = []
    if library == "tfllm":
        layer += dense(tokens, hidden, 3 * hidden)  # the fused QKV projection
        if attention_block_size and length > attention_block_size:
            for end in range(attention_block_size, length + attention_block_size, attention_block_size):
                queries = min(attention_block_size, length - (end - attention_block_size))
                layer += attention(rows, queries, min(end, length), head_dim)
        else:
            layer += attention(rows, length, length, head_dim)
    else:
        layer += 3 * dense(tokens, hidden, hidden)  # query, key and value projections
        layer += attention(rows, length, length, head_dim)
    layer += dense(tokens, hidden, hidden) + dense(tokens, hidden, config["intermediate_dim"])
    layer += dense(tokens, config["intermediate_dim"], hidden)
    vocabulary = config["vocabulary_size"]
    head = [  # the logits through the tied token embedding, and their two gradients
        Product("logits forward", (tokens, hidden), (vocabulary, hidden), False, True),
        Product("logits input gradient", (tokens, vocabulary), (vocabulary, hidden), False, False),
        Product("logits embedding gradient", (tokens, vocabulary), (tokens, hidden), True, False),
    ]
    counts = collections.Counter()
    for product in layer:
        counts[product] += config["num_layers"]
    counts.update(head)
    return counts


def flops(product):
    """2·M·K·N (times the batch) of one product."""
    *batch, rows, columns = product.lhs
    m, k = (columns, rows) if product.transpose_a else (rows, columns)
    n = product.rhs[-2] if product.transpose_b else product.rhs[-1]
    total = 2 * m * k * n
    for size in batch:
        total *= size
    return total


def time_product(product, repeats):
    """Median seconds of `product` alone, compiled with XLA."""
    import tensorflow as tf

    lhs, rhs = tf.random.normal(product.lhs, seed=1), tf.random.normal(product.rhs, seed=2)
    function = tf.function(
        lambda a, b: tf.matmul(a, b, transpose_a=product.transpose_a, transpose_b=product.transpose_b),
        jit_compile=True,
    )
    return kernels.time_call(function, (lhs, rhs), repeats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per product")
    parser.add_argument("--rounds", type=int, default=7, help="timed steps per library")
    parser.add_argument("--quick", action="store_true", help="tiny shapes: a smoke test")
    args = parser.parse_args(argv)

    config, batch, length = (training.TINY_GPT, 4, 32) if args.quick else (training.SMALL_GPT, 16, 256)
    spec = training.case("small", "gpt", config, batch, length, "float32", 0.0, True)
    per_library = {name: step_products(config, batch, length, name) for name in training.LIBRARIES}
    distinct = sorted(set().union(*per_library.values()), key=lambda p: (p.kind, p.lhs, p.rhs))
    seconds = {product: time_product(product, args.repeats) for product in distinct}

    print(f"small causal LM (batch {batch}, seq {length}), float32, XLA: each product alone")
    print(f"{'product':<28} {'lhs':>16} {'rhs':>16} {'ms':>7} {'GFLOP/s':>8} {'tfllm':>6} {'keras-hub':>9}")
    for product in distinct:
        counts = [per_library[name][product] for name in training.LIBRARIES]
        print(
            f"{product.kind:<28} {str(product.lhs):>16} {str(product.rhs):>16} {1000 * seconds[product]:7.2f} "
            f"{flops(product) / seconds[product] / 1e9:8.1f} {counts[0]:6d} {counts[1]:9d}"
        )
    floors = {name: sum(seconds[p] * n for p, n in counts.items()) for name, counts in per_library.items()}
    # Both whole steps, alternating, as `python -m benchmarks` times them.
    steps = {row["library"]: row["seconds_per_step"] for row in training.time_pair(spec, 1, args.rounds, 2)}
    result = {}
    for name in training.LIBRARIES:
        gflop = sum(flops(p) * n for p, n in per_library[name].items()) / 1e9
        print(
            f"{name}: products alone {1000 * floors[name]:.0f} ms ({gflop:.1f} GFLOP); whole step "
            f"{1000 * steps[name]:.0f} ms; the rest {1000 * (steps[name] - floors[name]):.0f} ms"
        )
        result[name] = dict(products_seconds=floors[name], step_seconds=steps[name], products_gflop=gflop)
    ceiling = steps["keras-hub"] / floors["tfllm"]
    print(f"keras-hub's step / tfllm's products alone: {ceiling:.2f}x (the speed-up if the rest took no time)")
    result["ceiling"] = ceiling
    return result


if __name__ == "__main__":
    from tfllm.training import use_pooled_cpu_allocator

    use_pooled_cpu_allocator()  # as `python -m benchmarks` does
    main()
