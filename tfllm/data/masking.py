"""Dynamic masked-LM masking (BERT's 15% / 80-10-10), token- or whole-word-level."""

import math

import tensorflow as tf


class MaskedLMMasker:
    """Chooses masked positions and corrupts them, freshly for every batch.

    Of the non-special tokens of each row, `round(mask_rate * n)` (at least one, at
    most `max_predictions`) are selected; each selected token becomes `[MASK]` with
    probability `mask_token_rate`, a random non-special token with probability
    `random_token_rate`, and stays itself otherwise. With whole-word masking, words
    (a token and the continuation tokens that follow it) are selected in random
    order while they fit in the budget, so a word is masked entirely or not at all.

    Randomness is stateless: every call takes a `seed` of shape `(2,)`, so a pipeline
    that draws a new seed per batch (`tf.data.Dataset.random`) masks differently every
    epoch yet reproducibly.

    Args:
        vocabulary_size: int.
        mask_token_id: int, the `[MASK]` id.
        special_token_ids: ids never selected nor drawn as random replacements
            (`[CLS]`, `[SEP]`, `[PAD]`, `[MASK]`, `[UNK]`, ...).
        sequence_length: int, the packed length; sets the default `max_predictions`.
        mask_rate: float, the fraction of tokens to predict.
        mask_token_rate: float, the fraction of those replaced by `[MASK]`.
        random_token_rate: float, the fraction replaced by a random token.
        max_predictions: int, the static number of predicted positions per row;
            defaults to `ceil(mask_rate * sequence_length)`.
        continuation_mask: optional list of bools over the vocabulary, `True` for
            tokens that continue a word (WordPiece's `##` pieces). Given, masking is
            whole-word.

    Call returns a dict: `token_ids` (corrupted), `mask_positions`, `mask_ids` (the
    original tokens there) and `mask_weights` (1.0 for real predictions, 0.0 for the
    padding of `mask_positions`).
    """

    def __init__(
        self,
        vocabulary_size,
        mask_token_id,
        special_token_ids,
        sequence_length,
        mask_rate=0.15,
        mask_token_rate=0.8,
        random_token_rate=0.1,
        max_predictions=None,
        continuation_mask=None,
    ):
        if not 0.0 < mask_rate < 1.0:
            raise ValueError(f"`mask_rate` must be in (0, 1). Received: mask_rate={mask_rate}")
        if mask_token_rate < 0 or random_token_rate < 0 or mask_token_rate + random_token_rate > 1:
            raise ValueError(
                "`mask_token_rate` and `random_token_rate` must be non-negative and sum to at most 1. "
                f"Received: mask_token_rate={mask_token_rate}, random_token_rate={random_token_rate}"
            )
        if continuation_mask is not None and len(continuation_mask) != vocabulary_size:
            raise ValueError(
                f"`continuation_mask` must have one entry per token ({vocabulary_size}). "
                f"Received {len(continuation_mask)} entries."
            )
        self.vocabulary_size = vocabulary_size
        self.mask_token_id = mask_token_id
        self.special_token_ids = sorted(set(special_token_ids) | {mask_token_id})
        self.mask_rate = mask_rate
        self.mask_token_rate = mask_token_rate
        self.random_token_rate = random_token_rate
        self.max_predictions = max_predictions or max(1, math.ceil(mask_rate * sequence_length))
        self.whole_word = continuation_mask is not None
        is_special = tf.scatter_nd(
            [[i] for i in self.special_token_ids], tf.ones(len(self.special_token_ids), tf.bool), [vocabulary_size]
        )
        self._is_special = is_special
        self._is_continuation = tf.constant(continuation_mask if self.whole_word else [False] * vocabulary_size)
        self._replacement_ids = tf.boolean_mask(tf.range(vocabulary_size, dtype=tf.int32), tf.logical_not(is_special))

    def __call__(self, token_ids, seed):
        token_ids = tf.convert_to_tensor(token_ids, tf.int32)
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=4)
        batch_size, length = tf.shape(token_ids)[0], tf.shape(token_ids)[1]

        candidate = tf.logical_not(tf.gather(self._is_special, token_ids))
        previous_candidate = tf.pad(candidate[:, :-1], [[0, 0], [1, 0]])
        # A word starts at a candidate that is not a continuation, or that follows a special token.
        starts = candidate & (tf.logical_not(tf.gather(self._is_continuation, token_ids)) | ~previous_candidate)
        word_index = tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1
        # (batch, tokens, words): which word each candidate token belongs to.
        membership = tf.one_hot(tf.where(candidate, word_index, -1), length, dtype=tf.float32)
        word_lengths = tf.reduce_sum(membership, axis=1)
        is_word = word_lengths > 0

        # Words taken in a random order while the running token count fits the budget.
        scores = tf.random.stateless_uniform((batch_size, length), seeds[0])
        scores = tf.where(is_word, scores, 2.0)
        # (batch, words, words): 1 where word j comes before word i.
        before = tf.cast(scores[:, None, :] < scores[:, :, None], tf.float32)
        tokens_before = tf.linalg.matvec(before, word_lengths)
        num_candidates = tf.reduce_sum(tf.cast(candidate, tf.float32), axis=1, keepdims=True)
        budget = tf.clip_by_value(tf.round(num_candidates * self.mask_rate), 1.0, float(self.max_predictions))
        is_first = tf.equal(tf.range(length)[None, :], tf.argmin(scores, axis=1, output_type=tf.int32)[:, None])
        chosen_words = is_word & ((tokens_before + word_lengths <= budget) | is_first)
        selected = tf.linalg.matvec(membership, tf.cast(chosen_words, tf.float32)) > 0

        # The selected positions first (in order), padded to max_predictions.
        positions = tf.range(length)[None, :]
        order = tf.argsort(tf.where(selected, positions, positions + length), axis=1)
        mask_positions = order[:, : self.max_predictions]
        mask_weights = tf.cast(tf.gather(selected, mask_positions, batch_dims=1), tf.float32)
        mask_positions = tf.pad(mask_positions, [[0, 0], [0, self.max_predictions - tf.shape(mask_positions)[1]]])
        mask_weights = tf.pad(mask_weights, [[0, 0], [0, self.max_predictions - tf.shape(mask_weights)[1]]])
        mask_ids = tf.gather(token_ids, mask_positions, batch_dims=1)
        # Positions beyond the budget cap are not predicted, so they are not corrupted either.
        selected = selected & (tf.reduce_sum(tf.one_hot(mask_positions, length) * mask_weights[..., None], 1) > 0)

        draw = tf.random.stateless_uniform((batch_size, length), seeds[1])
        random_ids = tf.gather(
            self._replacement_ids,
            tf.random.stateless_uniform(
                (batch_size, length), seeds[2], maxval=tf.shape(self._replacement_ids)[0], dtype=tf.int32
            ),
        )
        corrupted = tf.where(draw < self.mask_token_rate, self.mask_token_id, token_ids)
        corrupted = tf.where(
            (draw >= self.mask_token_rate) & (draw < self.mask_token_rate + self.random_token_rate),
            random_ids,
            corrupted,
        )
        return {
            "token_ids": tf.where(selected, corrupted, token_ids),
            "mask_positions": mask_positions,
            "mask_ids": mask_ids,
            "mask_weights": mask_weights,
        }
