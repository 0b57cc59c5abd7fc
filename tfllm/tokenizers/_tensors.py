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

    Takes a ragged or dense tensor, a NumPy array or (nested) lists, of rank 1 or 2. Ids must be
    integers; a float is read as its integer only when it is a whole number (`2.0`, never `2.5`),
    and inside a traced function, where values cannot be looked at, only integer dtypes are
    taken. Anything else (booleans, strings, ids beyond int64) is a ValueError.
    """
    if isinstance(ids, (list, tuple)) and any(isinstance(row, (list, tuple, np.ndarray, tf.Tensor)) for row in ids):
        # Rows of different lengths.
        rows = [_integer_values(row) for row in ids]
        for row in rows:
            if row.ndim != 1:
                raise ValueError(f"Token ids must have shape [batch, None] or [None]. Received a row of shape {row.shape}.")
        ids = tf.RaggedTensor.from_row_lengths(
            np.concatenate([np.zeros([0], np.int64), *rows]), np.array([len(row) for row in rows], np.int64)
        )
    elif not tf.executing_eagerly() and isinstance(ids, (tf.Tensor, tf.RaggedTensor)):
        if not ids.dtype.is_integer:
            raise ValueError(
                f"Token ids must be integers: in a traced function they need an integer dtype. Received dtype "
                f"{ids.dtype.name}."
            )
    elif isinstance(ids, tf.RaggedTensor):
        ids = ids.with_flat_values(_integer_values(ids.flat_values))
    else:
        ids = tf.convert_to_tensor(_integer_values(ids))
    ids = tf.cast(ids, tf.int64)
    if ids.shape.rank == 1 and not isinstance(ids, tf.RaggedTensor):
        return tf.RaggedTensor.from_tensor(ids[tf.newaxis], row_splits_dtype=tf.int64), True
    if ids.shape.rank == 2:
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids, row_splits_dtype=tf.int64)
        return ids.with_row_splits_dtype(tf.int64), False
    raise ValueError(f"Token ids must have shape [batch, None] or [None]. Received shape {ids.shape}.")


def _integer_values(values):
    """`values` (numbers, a NumPy array or an eager tensor) as an int64 array, changing no value."""
    if isinstance(values, (list, tuple)) and any(isinstance(value, (bool, np.bool_)) for value in values):
        raise ValueError(f"Token ids must be integers. Received a boolean: {values!r:.80}")
    try:
        array = np.asarray(values)
    except (ValueError, OverflowError) as error:
        raise ValueError(f"Token ids must be integers, in rows of numbers. Received {values!r:.80} ({error})") from None
    if array.size == 0:
        return array.astype(np.int64)
    if array.dtype.kind == "u" and array.max() > np.iinfo(np.int64).max:
        raise ValueError(f"Token ids must be integers within int64. Received the id {array.max()}.")
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    if array.dtype.kind == "f":
        whole = np.isfinite(array) & (np.floor(array) == array) & (np.abs(array) < 2.0**63)
        if not whole.all():
            raise ValueError(f"Token ids must be integers. Received the id {array[~whole][0].item()!r}, not a whole number.")
        return array.astype(np.int64)
    if array.dtype == object and all(isinstance(value, int) for value in array.flat):
        # Python ints numpy cannot hold.
        raise ValueError(f"Token ids must be integers within int64. Received the id {max(array.flat, key=abs)}.")
    kind = {"b": "boolean", "U": "string", "S": "bytes"}.get(array.dtype.kind, array.dtype.name)
    raise ValueError(f"Token ids must be integers. Received {kind} values such as {array.flat[0].item()!r}.")
