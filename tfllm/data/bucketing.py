"""Length bucketing: batches of similar-length texts, cut to their bucket's length."""

import tensorflow as tf


def bucket_by_length(dataset, batch_size, boundaries):
    """Regroups padded batches so that each holds texts of similar length, with less padding.

    Short texts padded to a long `sequence_length` cost a transformer as much as long ones:
    SST-2's sentences average 13 WordPiece tokens, so batches padded to 64 are 80% padding.
    This takes the batches of `classification_dataset` (or any `(features, labels)` batches
    whose `features["padding_mask"]` marks the real tokens), sends each example to the
    smallest bucket its length fits, emits a bucket's batch once it holds `batch_size`
    examples, and cuts the batch's features to the bucket's length. A BERT's outputs at real
    tokens do not depend on how much padding follows them, so only the cost changes.

    Each bucket length is one input shape: with `jit_compile=True` Keras compiles the model
    once per bucket, so keep the buckets few. Shuffling happens upstream, before batching.

    Args:
        dataset: a `tf.data.Dataset` of `(features, labels)` batches, every feature a
            `(batch, sequence_length)` tensor, `features["padding_mask"]` nonzero at real tokens.
        batch_size: int, the size of the regrouped batches (the last batch of each bucket may
            be smaller).
        boundaries: increasing ints, the bucket lengths below the full `sequence_length`
            (e.g. `(16, 32)`: buckets of 16, 32 and `sequence_length` tokens).

    Returns:
        A `tf.data.Dataset` of `(features, labels)` batches of `batch_size`.

    Example:

    >>> train, labels = classification_dataset("train.tsv", tokenizer, 64, 32)
    >>> train = bucket_by_length(train, 32, boundaries=(16, 32))
    """
    boundaries = [int(boundary) for boundary in boundaries]
    if not boundaries or any(b <= 0 for b in boundaries) or boundaries != sorted(set(boundaries)):
        raise ValueError(f"`boundaries` must be increasing positive ints. Received: boundaries={boundaries!r}")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}")

    def length(features, label):
        return tf.reduce_sum(tf.cast(features["padding_mask"] != 0, tf.int32))

    def cut(features, labels):
        longest = tf.reduce_max(tf.reduce_sum(tf.cast(features["padding_mask"] != 0, tf.int32), axis=1))
        full = tf.shape(features["padding_mask"])[1]
        candidates = tf.constant(boundaries, tf.int32)
        fitting = tf.boolean_mask(candidates, candidates >= longest)
        bucket = tf.cond(tf.size(fitting) > 0, lambda: tf.minimum(fitting[0], full), lambda: full)
        return {name: value[:, :bucket] for name, value in features.items()}, labels

    # Lengths below boundary + 1 go to the bucket `boundary`; the last bucket takes the rest.
    return (
        dataset.unbatch()
        .bucket_by_sequence_length(
            length,
            bucket_boundaries=[boundary + 1 for boundary in boundaries],
            bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        )
        .map(cut, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
