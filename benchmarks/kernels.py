"""Single kernels of the small training step, each timed in the plain graph and under XLA.

Where `benchmarks.profile_training` says which ops a step spends its time in, this says how fast
each of the big ones runs on this CPU, alone, with and without XLA: the tied logits product
and its two gradients, the cross-entropy over the logits with its gradient (Keras's
`SparseCategoricalCrossentropy(from_logits=True)` and tfllm's `SparseCrossEntropy`), the two
batched attention products, and a dropout mask (what Keras's
`Dropout` runs on TensorFlow, Philox numbers, and `HashDropout`'s counter-hash mask, which XLA
fuses; the ops alone, without the layers' seed generators), and a whole causal `TransformerBlock`
forward and backward at the small case's and GPT-2 small's sizes, its attention computed as one
square of scores and in blocks of 128 queries (its default `attention_block_size`):

    python -m benchmarks.kernels
    python -m benchmarks.kernels --quick     # tiny shapes, seconds

Figures are the median milliseconds of `--repeats` calls after a warm-up (which compiles), on
TensorFlow's pooled CPU allocator, as `python -m benchmarks` runs.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def kernels(tokens, hidden, vocabulary, heads, length):
    """`[(name, flops or None, function, arguments)]` at the given sizes."""
    import tensorflow as tf

    import keras

    from tfllm.layers.dropout import hash_keep_mask
    from tfllm.training import SparseCrossEntropy

    def normal(*shape):
        return tf.random.normal(shape, seed=len(shape))

    x, embeddings, logits_grad = normal(tokens, hidden), normal(vocabulary, hidden), normal(tokens, vocabulary)
    rows, head_dim = tokens // length * heads, hidden // heads
    query, key, probs = normal(rows, length, head_dim), normal(rows, length, head_dim), normal(rows, length, length)
    seed = tf.constant([12345, 678], tf.uint32)

    labels = tf.random.uniform((tokens,), 0, vocabulary, tf.int32, seed=3)
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def loss_and_gradient(loss):
        def run(logits):
            with tf.GradientTape() as tape:
                tape.watch(logits)
                value = loss(labels, logits)
            # The whole gradient, as a training step needs it (written out for the products that
            # take it), with the loss added so that nothing is pruned.
            return tape.gradient(value, logits) + value

        return run

    def hash_dropout(p):
        return tf.where(hash_keep_mask(p.shape, 0.1, seed), p / 0.9, tf.zeros_like(p))

    logits_flops = 2 * tokens * hidden * vocabulary
    attention_flops = 2 * rows * length * length * head_dim
    return [
        ("logits x·Eᵀ", logits_flops, lambda a, b: tf.matmul(a, b, transpose_b=True), (x, embeddings)),
        ("logits gradient to x (g·E)", logits_flops, tf.matmul, (logits_grad, embeddings)),
        ("logits gradient to E (gᵀ·x)", logits_flops, lambda a, b: tf.matmul(a, b, transpose_a=True), (logits_grad, x)),
        ("cross-entropy + gradient, Keras", None, loss_and_gradient(keras_loss), (logits_grad,)),
        ("cross-entropy + gradient, tfllm", None, loss_and_gradient(SparseCrossEntropy()), (logits_grad,)),
        ("attention scores q·kᵀ", attention_flops, lambda a, b: tf.matmul(a, b, transpose_b=True), (query, key)),
        ("attention output p·v", attention_flops, tf.matmul, (probs, key)),
        ("dropout 0.1 on p, Keras", None, lambda p: tf.nn.experimental.stateless_dropout(p, 0.1, seed=[1, 2]), (probs,)),
        ("dropout 0.1 on p, HashDropout", None, hash_dropout, (probs,)),
    ]


def block_kernels(batch, length, hidden, heads, attention_block_size):
    """A causal `TransformerBlock`'s forward and backward at the given sizes, its attention computed
    as one square of scores and in blocks of `attention_block_size` queries:
    `[(name, None, function, arguments)]`."""
    import tensorflow as tf

    from tfllm.layers import TransformerBlock

    inputs = tf.random.normal((batch, length, hidden), seed=1)
    output_weights = tf.random.normal((batch, length, hidden), seed=2)

    def forward_backward(block_size):
        block = TransformerBlock(
            heads,
            4 * hidden,
            activation="gelu_approximate",
            normalize_first=True,
            causal=True,
            attention_block_size=block_size,
        )
        block.build(inputs.shape)

        def run(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(block(x) * output_weights)
            # One scalar, so that nothing (not the weight gradients) is pruned.
            return tf.add_n([tf.reduce_sum(g) for g in tape.gradient(loss, [x, *block.trainable_variables])])

        return run

    shape = f"{batch}x{length}x{hidden}"
    return [
        (f"block {shape}, square", None, forward_backward(None), (inputs,)),
        (f"block {shape}, blocks of {attention_block_size}", None, forward_backward(attention_block_size), (inputs,)),
    ]


def time_call(function, arguments, repeats):
    """Median seconds of `function(*arguments)` over `repeats` calls, after two warm-up calls."""
    for _ in range(2):
        function(*arguments).numpy()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*arguments).numpy()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="tiny shapes: a smoke test")
    args = parser.parse_args(argv)
    import tensorflow as tf

    # The small case of `python -m benchmarks`: batch 16 x sequence 256 tokens, hidden 256.
    sizes = dict(tokens=128, hidden=32, vocabulary=512, heads=2, length=32) if args.quick else dict(
        tokens=4096, hidden=256, vocabulary=8192, heads=4, length=256
    )
    # Causal blocks of the small case and of GPT-2 small (sequence 1024), with the
    # default `attention_block_size` against the full square.
    blocks = [(4, 32, 32, 2, 8)] if args.quick else [(16, 256, 256, 4, 128), (1, 1024, 768, 12, 128)]
    print(f"{'kernel':<34} {'plain ms':>9} {'XLA ms':>8} {'plain GFLOP/s':>14} {'XLA GFLOP/s':>12}")
    results = []
    rows = kernels(**sizes) + [row for block in blocks for row in block_kernels(*block)]
    for name, flops, function, arguments in rows:
        plain = time_call(tf.function(function), arguments, args.repeats)
        xla = time_call(tf.function(function, jit_compile=True), arguments, args.repeats)
        rates = [f"{flops / seconds / 1e9:.1f}" if flops else "-" for seconds in (plain, xla)]
        print(f"{name:<34} {1000 * plain:9.2f} {1000 * xla:8.2f} {rates[0]:>14} {rates[1]:>12}", flush=True)
        results.append(dict(kernel=name, plain_seconds=plain, xla_seconds=xla, flops=flops))
    return results


if __name__ == "__main__":
    from tfllm.training import use_pooled_cpu_allocator

    use_pooled_cpu_allocator()  # as `python -m benchmarks` does
    main()
