"""Token classification data (named entities): words and their tags as BERT inputs and labels."""

import numpy as np
import tensorflow as tf

from tfllm._validation import check_positive_int

IGNORED = -1  # The label of positions that neither the loss nor the metrics look at.


def word_piece_labels(tokenizer, words, tags, label_vocabulary):
    """Each sentence's WordPiece ids and their labels.

    The tokenizer may cut a word further ("U.S." is read as "U", ".", "S", "."), and at serving
    time the text is cut the same way, so each part is a word of its own there. The first piece
    of the first part carries the word's tag; the first piece of each later part carries the
    word's continuation (`I-TYPE` for an entity, `O` outside one); every other piece is
    `IGNORED`. A text cut by the tokenizer is thus labelled as in training, and the metrics
    read each word's tag at its first piece.

    Args:
        tokenizer: a `tfllm.tokenizers.WordPieceTokenizer`.
        words: list of sentences, each a list of word strings.
        tags: list of sentences, each a list of IOB2 tags, as long as its words.
        label_vocabulary: list of tags; a tag's id is its position.

    Returns:
        `(piece_ids, labels)`: lists (one per sentence) of int32 NumPy arrays of equal length.

    Raises:
        ValueError for a tag not in `label_vocabulary` (naming the sentence index and the tag),
        or a sentence whose words and tags differ in number.
    """
    label_ids = {label: index for index, label in enumerate(label_vocabulary)}
    if "O" not in label_ids:
        raise ValueError(f"The label vocabulary must hold 'O'. Received: {list(label_vocabulary)[:10]}")
    unique = sorted({word for sentence in words for word in sentence})
    parts = _word_parts(tokenizer, unique)
    pieces_of = dict(zip(unique, parts))
    all_ids, all_labels = [], []
    for index, (sentence, sentence_tags) in enumerate(zip(words, tags)):
        if len(sentence) != len(sentence_tags):
            raise ValueError(f"Sentence {index} has {len(sentence)} words but {len(sentence_tags)} tags.")
        ids, labels = [], []
        for word, tag in zip(sentence, sentence_tags):
            if tag not in label_ids:
                raise ValueError(
                    f"Sentence {index}: the tag {tag!r} is not in the label vocabulary {list(label_vocabulary)}."
                )
            continuation = "O" if tag == "O" else "I-" + tag[2:]
            if continuation not in label_ids:
                raise ValueError(f"The label vocabulary lacks {continuation!r}, the continuation of {tag!r}.")
            for position, part in enumerate(pieces_of[word]):
                ids.extend(part)
                labels.append(label_ids[tag] if position == 0 else label_ids[continuation])
                labels.extend([IGNORED] * (len(part) - 1))
        all_ids.append(np.array(ids, np.int32))
        all_labels.append(np.array(labels, np.int32))
    return all_ids, all_labels


def _word_parts(tokenizer, words, batch_size=4096):
    """For each word: a list of its parts' piece-id lists (a word with no part gets `[UNK]`)."""
    parts = []
    for start in range(0, len(words), batch_size):
        batch = words[start : start + batch_size]
        split, _, _ = tokenizer.split_words(tf.constant(batch))
        pieces = tokenizer.tokenize_words(split).to_list()
        for word_pieces in pieces:
            parts.append(word_pieces or [[tokenizer.unknown_token_id]])
    return parts


def _windows(ids, labels, length):
    """Cuts a sentence longer than `length` pieces into consecutive windows, between words
    (a word's first piece always has a label): all of it is trained on, nothing is cut off."""
    if len(ids) <= length:
        return [(ids, labels)]
    word_starts = np.flatnonzero(labels != IGNORED)
    windows, start = [], 0
    while start < len(ids):
        end = start + length
        if end < len(ids):
            # The last word start inside the window that leaves the window non-empty.
            inside = word_starts[(word_starts > start) & (word_starts <= end)]
            end = int(inside[-1]) if inside.size else end
        windows.append((ids[start:end], labels[start:end]))
        start = end
    return windows


def token_classification_dataset(
    sentences,
    tokenizer,
    label_vocabulary,
    sequence_length,
    batch_size,
    shuffle_buffer=10_000,
    seed=None,
    boundaries=None,
):
    """Batches of BERT inputs with per-token labels and weights, for `model.fit`.

    Each sentence becomes `[CLS] pieces [SEP]` (see `word_piece_labels` for which pieces carry
    a label); sentences longer than `sequence_length - 2` pieces are cut between words into
    several examples, so no word is lost. Padding, `[CLS]`, `[SEP]` and the pieces after a
    word's first get weight 0.

    Args:
        sentences: a `tfllm.data.TaggedSentences` (from `read_conll`), or a pair
            `(words, tags)` of lists of sentences.
        tokenizer: a `tfllm.tokenizers.WordPieceTokenizer`.
        label_vocabulary: list of IOB2 tags (`TaggedSentences.label_vocabulary()`); a tag's
            id is its position.
        sequence_length: int, the longest packed example.
        batch_size: int.
        shuffle_buffer: examples shuffled at a time; 0 or None keeps the order (evaluation).
        seed: shuffling seed.
        boundaries: increasing ints below `sequence_length`, e.g. `(32, 64)`: each batch is
            padded only to the smallest of these (or `sequence_length`) that holds its longest
            example, and examples are grouped by length (less padding, one compiled shape per
            length). None pads every batch to `sequence_length`.

    Returns:
        A `tf.data.Dataset` of `(features, labels, sample_weight)`: features
        `{"token_ids", "segment_ids", "padding_mask"}` int32 `(batch, length)`, labels int32
        `(batch, length)` (0 where ignored), sample_weight float32 `(batch, length)`.
    """
    check_positive_int("batch_size", batch_size)
    if not isinstance(sequence_length, int) or sequence_length < 3:
        raise ValueError(f"`sequence_length` must be an int >= 3. Received: sequence_length={sequence_length!r}")
    words, tags = (sentences.words, sentences.tags) if hasattr(sentences, "words") else sentences
    if not words:
        raise ValueError(f"No sentences to build a token classification dataset from{_source(sentences)}.")
    ids, labels = word_piece_labels(tokenizer, words, tags, label_vocabulary)
    examples = [window for pair in zip(ids, labels) for window in _windows(*pair, sequence_length - 2)]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    tokens = [np.concatenate([[cls], window_ids, [sep]]).astype(np.int32) for window_ids, _ in examples]
    targets = [np.concatenate([[IGNORED], window_labels, [IGNORED]]).astype(np.int32) for _, window_labels in examples]
    tokens, targets = _ragged(tokens), _ragged(targets)
    dataset = tf.data.Dataset.range(len(examples)).map(lambda index: (tokens[index], targets[index]))
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if boundaries:
        boundaries = [int(boundary) for boundary in boundaries]
        if boundaries != sorted(set(boundaries)) or boundaries[0] < 3 or boundaries[-1] >= sequence_length:
            raise ValueError(
                f"`boundaries` must be increasing ints in [3, sequence_length). Received: boundaries={boundaries!r}"
            )
        dataset = dataset.bucket_by_sequence_length(
            lambda token_ids, _: tf.shape(token_ids)[0],
            bucket_boundaries=[boundary + 1 for boundary in boundaries + [sequence_length]],
            bucket_batch_sizes=[batch_size] * (len(boundaries) + 2),
            padded_shapes=([None], [None]),
            padding_values=(tokenizer.pad_token_id, IGNORED),
            pad_to_bucket_boundary=True,
        )
    else:
        dataset = dataset.padded_batch(
            batch_size, padded_shapes=([sequence_length], [sequence_length]), padding_values=(tokenizer.pad_token_id, IGNORED)
        )
    return dataset.map(_features_and_weights(tokenizer.pad_token_id), num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE
    )


def _features_and_weights(pad_token_id):
    def split(token_ids, labels):
        features = {
            "token_ids": token_ids,
            "segment_ids": tf.zeros_like(token_ids),
            "padding_mask": tf.cast(token_ids != pad_token_id, tf.int32),
        }
        weights = tf.cast(labels != IGNORED, tf.float32)
        return features, tf.maximum(labels, 0), weights

    return split


def _ragged(rows):
    return tf.RaggedTensor.from_row_lengths(np.concatenate(rows), [len(row) for row in rows])


def _source(sentences):
    path = getattr(sentences, "path", None)
    return f" ({path})" if path else ""
