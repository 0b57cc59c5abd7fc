"""The BERT pretraining pipeline: next-sentence pairs, packing, dynamic MLM masking."""

import keras_hub
import tensorflow as tf

from tfllm.data._files import check_files
from tfllm.data.masking import MaskedLMMasker

AUTOTUNE = tf.data.AUTOTUNE


def sentence_pairs(files, shuffle_buffer=10_000, seed=None):
    """Streams `(first, second, is_next)` sentence pairs, half of them consecutive.

    The files hold one sentence per line, documents separated by blank lines (the
    format of BERT's `create_pretraining_data.py`). Every sentence that has a next
    sentence in its document starts a pair: with probability 0.5 the second sentence
    is that next one (`is_next=1`), otherwise a random sentence of the corpus
    (`is_next=0`).

    Lines are read by `tf.data.TextLineDataset` (split at "\\n", every "\\r" dropped) and
    stripped of surrounding whitespace; bytes that are not UTF-8 reach the tokenizer as they
    are, and tfllm's `WordPieceTokenizer` reads each such sequence as U+FFFD (an `[UNK]`).
    """
    files = check_files(files)
    lines = tf.data.TextLineDataset(files).map(tf.strings.strip)
    random_sentences = (
        lines.filter(lambda line: tf.strings.length(line) > 0)
        .shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        .repeat()
    )
    coins = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    pairs = tf.data.Dataset.zip(lines, lines.skip(1), random_sentences, coins)
    pairs = pairs.filter(lambda first, following, _, __: (tf.strings.length(first) > 0) & (tf.strings.length(following) > 0))

    def choose(first, following, random_sentence, coin):
        is_next = coin % 2 == 0
        return first, tf.where(is_next, following, random_sentence), tf.cast(is_next, tf.int32)

    return pairs.map(choose, num_parallel_calls=AUTOTUNE)


def bert_pretraining_dataset(
    files,
    tokenizer,
    sequence_length,
    batch_size,
    mask_rate=0.15,
    whole_word_masking=False,
    max_predictions=None,
    shuffle_buffer=10_000,
    seed=None,
    drop_remainder=True,
):
    """Streams masked-LM + next-sentence batches for `tfllm.models.BERTPretrainer`.

    Each element is `(features, labels, sample_weights)`:
    features `{"token_ids", "segment_ids", "padding_mask", "mask_positions"}`,
    labels `{"mlm": mask_ids, "nsp": is_next}`, sample weights
    `{"mlm": mask_weights, "nsp": ones}` — the padding of `mask_positions` has weight
    0, so the MLM loss never counts it. Masking is redrawn every epoch.

    Args:
        files: text files, one sentence per line, blank lines between documents.
        tokenizer: a `tfllm.tokenizers.WordPieceTokenizer` (or any tokenizer with
            `cls_token_id`, `sep_token_id`, `pad_token_id`, `mask_token_id`,
            `vocabulary_size()` and `get_vocabulary()`).
        sequence_length: int, the packed length `[CLS] A [SEP] B [SEP]`.
        batch_size: int.
        mask_rate: the fraction of non-special tokens predicted.
        whole_word_masking: mask every piece of a word together.
        max_predictions: predicted positions per row (default `ceil(rate * length)`).
        shuffle_buffer: pairs held for shuffling (and for drawing random sentences).
        seed: optional seed for pairing, shuffling and masking.
        drop_remainder: drop the last partial batch.

    Raises:
        ValueError when the files hold fewer sentence pairs than one batch (than one pair
        without `drop_remainder`), which would give an empty dataset: documents of one
        sentence have none. The check reads only as many lines as one batch needs.
    """
    files = check_files(files)
    _check_one_batch(files, batch_size if drop_remainder else 1, batch_size)
    vocabulary = tokenizer.get_vocabulary()
    special_ids = [
        tokenizer.token_to_id(token) for token in vocabulary if token.startswith("[") and token.endswith("]")
    ]
    masker = MaskedLMMasker(
        vocabulary_size=len(vocabulary),
        mask_token_id=tokenizer.mask_token_id,
        special_token_ids=special_ids,
        sequence_length=sequence_length,
        mask_rate=mask_rate,
        max_predictions=max_predictions,
        continuation_mask=[token.startswith("##") for token in vocabulary] if whole_word_masking else None,
    )
    packer = keras_hub.layers.MultiSegmentPacker(
        sequence_length=sequence_length,
        start_value=tokenizer.cls_token_id,
        end_value=tokenizer.sep_token_id,
        pad_value=tokenizer.pad_token_id,
        truncate="waterfall",
    )
    pairs = sentence_pairs(files, shuffle_buffer=shuffle_buffer, seed=seed)
    if shuffle_buffer:
        pairs = pairs.shuffle(shuffle_buffer, seed=seed)
    batches = pairs.batch(batch_size, drop_remainder=drop_remainder)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def pack_and_mask(batch, mask_seed):
        first, second, is_next = batch
        token_ids, segment_ids = packer((tokenizer(first), tokenizer(second)))
        masked = masker(token_ids, mask_seed)
        features = {
            "token_ids": masked["token_ids"],
            "segment_ids": tf.cast(segment_ids, tf.int32),
            "padding_mask": tf.cast(token_ids != tokenizer.pad_token_id, tf.int32),
            "mask_positions": masked["mask_positions"],
        }
        labels = {"mlm": masked["mask_ids"], "nsp": is_next}
        weights = {"mlm": masked["mask_weights"], "nsp": tf.ones_like(is_next, tf.float32)}
        return features, labels, weights

    dataset = tf.data.Dataset.zip(batches, seeds).map(pack_and_mask, num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)


def _check_one_batch(files, needed, batch_size, lines_per_block=4096):
    """Raises a ValueError when `files` hold fewer than `needed` sentence pairs; reads only that far."""
    pairs = sentences = 0
    previous = False  # whether the line before the block was a sentence
    lines = tf.data.TextLineDataset(files).map(tf.strings.strip).batch(lines_per_block)
    for block in lines:
        is_sentence = tf.strings.length(block).numpy() > 0
        sentences += int(is_sentence.sum())
        pairs += int((is_sentence[1:] & is_sentence[:-1]).sum()) + int(previous and is_sentence[0])
        previous = bool(is_sentence[-1])
        if pairs >= needed:
            return
    one_batch = f"one batch of batch_size={batch_size} pairs (drop_remainder=True)" if needed > 1 else "one pair"
    raise ValueError(
        f"The corpus {files} holds {pairs} sentence pairs (a sentence and the next in its document) among "
        f"{sentences} sentences, fewer than {one_batch}: the dataset would be empty. Next-sentence pairs need "
        "documents of two or more sentences: one sentence per line, a blank line between documents."
    )
