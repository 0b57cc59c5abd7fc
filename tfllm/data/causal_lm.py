"""The causal-LM pipeline: tokenize files, join documents with an end-of-text token, cut windows."""

import tensorflow as tf

from tfllm.data._files import check_files

AUTOTUNE = tf.data.AUTOTUNE


def token_stream(files, tokenizer, end_of_text_id, lines_per_batch=512):
    """A dataset of every token of `files`, in order, one int32 scalar per element.

    Each file is one document: its lines are tokenized with their newlines kept, and
    `end_of_text_id` follows its last token.

    Lines are read by `tf.data.TextLineDataset`, which splits at "\\n" and drops every "\\r":
    a "\\r\\n" line end reaches the tokenizer as "\\n", a lone "\\r" not at all, and a last line
    without "\\n" gets one. The bytes go to the tokenizer as they are; tfllm's tokenizers read
    each sequence that is not UTF-8 as U+FFFD (see `BytePairTokenizer`).

    Args:
        files: a path or a list of paths to UTF-8 text files.
        tokenizer: a callable mapping a batch of strings to ragged int token ids.
        end_of_text_id: int, the id placed after every document.
        lines_per_batch: how many lines are tokenized in one call.
    """
    return _token_blocks(check_files(files), tokenizer, end_of_text_id, lines_per_batch).unbatch()


def _token_blocks(files, tokenizer, end_of_text_id, lines_per_batch=512):
    """The tokens of `files` in order, as 1-D int32 blocks (one per `lines_per_batch` lines)."""
    end_of_text = tf.constant([end_of_text_id], "int32")

    def tokenize(lines):
        return tf.cast(tokenizer(lines + "\n").flat_values, "int32")

    def document(path):
        lines = tf.data.TextLineDataset(path).batch(lines_per_batch)
        tokens = lines.map(tokenize, num_parallel_calls=AUTOTUNE, deterministic=True)
        return tokens.concatenate(tf.data.Dataset.from_tensors(end_of_text))

    return tf.data.Dataset.from_tensor_slices(files).flat_map(document)


def causal_lm_dataset(
    files,
    tokenizer,
    sequence_length,
    batch_size,
    end_of_text_id,
    shuffle_buffer=10_000,
    seed=None,
    cache=False,
    drop_remainder=True,
):
    """Streams `({"token_ids", "padding_mask"}, labels)` batches for next-token prediction.

    The token stream of `files` (see `token_stream`) is cut into consecutive,
    non-overlapping windows of `sequence_length + 1` tokens; each window gives the
    inputs `window[:-1]` and the labels `window[1:]`. Windows never contain padding
    (`padding_mask` is all ones), so the loss counts every label. The tail shorter
    than one window is dropped.

    Args:
        files: a path or a list of paths to UTF-8 text files, one document each.
        tokenizer: a callable mapping a batch of strings to ragged int token ids.
        sequence_length: int, the model's input length.
        batch_size: int.
        end_of_text_id: int, the token that separates documents.
        shuffle_buffer: windows held for shuffling; 0 or None keeps file order.
        seed: optional shuffle seed.
        cache: keep the tokenized windows in memory after the first epoch (for
            corpora that fit; skips re-tokenizing every epoch).
        drop_remainder: drop the last partial batch.

    Returns:
        A `tf.data.Dataset`, prefetched.

    Raises:
        FileNotFoundError / ValueError for missing or empty files, and ValueError
        when the corpus is shorter than one batch (one window without
        `drop_remainder`), which would give an empty dataset. The check tokenizes
        only the start of the corpus, as much as one batch needs.
    """
    files = check_files(files)
    if sequence_length < 1 or batch_size < 1:
        raise ValueError(
            f"`sequence_length` and `batch_size` must be positive. Received: "
            f"sequence_length={sequence_length}, batch_size={batch_size}"
        )
    _check_one_batch(files, tokenizer, end_of_text_id, sequence_length + 1, batch_size, drop_remainder)
    windows = token_stream(files, tokenizer, end_of_text_id).batch(sequence_length + 1, drop_remainder=True)
    windows = windows.map(_split_window, num_parallel_calls=AUTOTUNE)
    if cache:
        windows = windows.cache()
    if shuffle_buffer:
        windows = windows.shuffle(shuffle_buffer, seed=seed)
    return windows.batch(batch_size, drop_remainder=drop_remainder).prefetch(AUTOTUNE)


def _split_window(window):
    inputs = {"token_ids": window[:-1], "padding_mask": tf.ones_like(window[:-1])}
    return inputs, window[1:]


def _check_one_batch(files, tokenizer, end_of_text_id, window, batch_size, drop_remainder):
    """Raises a ValueError when `files` hold fewer tokens than one batch needs; reads only that many."""
    needed = window * (batch_size if drop_remainder else 1)
    tokens = 0
    for block in _token_blocks(files, tokenizer, end_of_text_id):
        tokens += int(tf.size(block))
        if tokens >= needed:
            return
    held = f"The corpus {files} holds {tokens} tokens (one end-of-text token per document included)"
    advice = "Give more text, or a smaller sequence_length"
    if tokens < window:
        raise ValueError(
            f"{held}, shorter than one window of sequence_length + 1 = {window} tokens: the dataset would be "
            f"empty. {advice}."
        )
    raise ValueError(
        f"{held}: {tokens // window} windows of sequence_length + 1 = {window} tokens, fewer than one batch of "
        f"batch_size={batch_size} windows ({needed} tokens), so with drop_remainder=True the dataset would be "
        f"empty. {advice} or batch_size, or pass drop_remainder=False."
    )
