"""Sliding windows over token sequences longer than a model's input, in TensorFlow ops."""

import tensorflow as tf


def sliding_windows(lengths, window, stride):
    """Where the windows over each sequence start, and how long they are.

    A sequence of `n <= window` tokens is one window (an empty one for `n == 0`); a longer one
    gets windows starting every `stride` tokens, the last moved back to end at the sequence's
    end, so every token is in at least one window and no window runs past the end.

    Args:
        lengths: int64 `[batch]`, the length of each sequence.
        window: int, the most tokens in a window; or int `[batch]`, one for each sequence.
        stride: int in [1, window], the step between window starts.

    Returns:
        `(rows, starts, sizes)`: int64 `[num_windows]`, the sequence each window belongs to (in
        order), its first token and its number of tokens.
    """
    lengths = tf.cast(lengths, tf.int64)
    window = tf.broadcast_to(tf.cast(window, tf.int64), tf.shape(lengths))
    beyond = tf.maximum(lengths - window, 0)
    counts = 1 + (beyond + stride - 1) // stride
    rows = tf.repeat(tf.range(tf.size(lengths, out_type=tf.int64)), counts)
    steps = tf.ragged.range(counts).flat_values
    starts = tf.minimum(steps * stride, tf.gather(beyond, rows))
    sizes = tf.minimum(tf.gather(lengths, rows) - starts, tf.gather(window, rows))
    return rows, starts, sizes
