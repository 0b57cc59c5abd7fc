"""Turning the inputs users pass (strings, lists, NumPy, tensors) into the tensors tokenizers take."""

import numpy as np
import tensorflow as tf


def sanitize_utf8(strings):
    """Replaces every invalid UTF-8 sequence with U+FFFD, so later ops never fail on bad bytes."""
    return tf.strings.unicode_transcode(
        strings, input_encoding="UTF-8", output_encoding="UTF-8", errors="replace", replacement_char=0xFFFD
    )


def string_tensor(inputs, tokenizer_name):
    """`inputs` as a string tensor (ragged ones stay ragged); a ValueError for anything else."""
    if not isinstance(inputs, tf.RaggedTensor):
        inputs = tf.convert_to_tensor(inputs)
    if inputs.dtype != tf.string:
        raise ValueError(f"{tokenizer_name} takes strings. Received a tensor of dtype {inputs.dtype.name}.")
    return inputs


def ragged_ids(ids):
    """`(ids as ragged [batch, None] int64, whether a single sequence came in)`.

    Takes a ragged or dense tensor, a NumPy array or (nested) lists, of rank 1 or 2.
    """
    if isinstance(ids, (list, tuple)) and any(isinstance(row, (list, tuple, np.ndarray)) for row in ids):
        # Rows of different lengths.
        ids = tf.ragged.constant([list(row) for row in ids], dtype=tf.int64)
    elif not isinstance(ids, tf.RaggedTensor):
        ids = tf.convert_to_tensor(np.asarray(ids, dtype=np.int64) if isinstance(ids, (list, tuple)) else ids)
    if not ids.dtype.is_integer:
        raise ValueError(f"Token ids must be integers. Received dtype {ids.dtype.name}.")
    ids = tf.cast(ids, tf.int64)
    if ids.shape.rank == 1 and not isinstance(ids, tf.RaggedTensor):
        return tf.RaggedTensor.from_tensor(ids[tf.newaxis], row_splits_dtype=tf.int64), True
    if ids.shape.rank == 2:
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids, row_splits_dtype=tf.int64)
        return ids.with_row_splits_dtype(tf.int64), False
    raise ValueError(f"Token ids must have shape [batch, None] or [None]. Received shape {ids.shape}.")
