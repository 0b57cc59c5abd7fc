"""Entities from a token classifier, in TensorFlow ops: the same code evaluates and serves."""

import numpy as np
import tensorflow as tf

from tfllm._validation import check_positive_int
from tfllm.inference.windows import sliding_windows
from tfllm.tokenizers._tensors import sanitize_utf8


class EntityRecognizer:
    """Runs a `tfllm.models.BERTTokenClassifier` over words or raw text and decodes entities.

    Text is cut into words by the tokenizer (`WordPieceTokenizer.split_words`), each word into
    pieces; the pieces of a text go through the model in windows of `sequence_length - 2`
    (`[CLS] window [SEP]`), `stride` pieces apart, so a text of any length is read whole. A
    piece that falls in several windows gets the mean of their logits. Each word takes the
    tag of its first piece.

    Entities are read from the word tags as conlleval (and seqeval) read IOB2: a `B-X` starts
    an entity; an `I-X` continues the entity before it when that entity is an `X`, and starts
    a new `X` entity otherwise (after `O` or another type); `O` ends it. An entity's score is
    the mean probability of its words' tags.

    Every method is TensorFlow ops only, so it runs in `tf.function`s and SavedModels.

    Args:
        model: a `tfllm.models.BERTTokenClassifier` (or any model mapping BERT inputs to
            `(batch, length, len(labels))` logits).
        tokenizer: the `tfllm.tokenizers.WordPieceTokenizer` it was trained with.
        labels: the tag of each class (`O`, `B-PER`, `I-PER`, ...), IOB2.
        sequence_length: int, the longest input the model reads.
        stride: int, the step between windows in pieces; default half a window.
        constrained: bool, decode each sentence's most probable valid IOB2 tag sequence
            (default) rather than each word's most probable tag.
    """

    def __init__(self, model, tokenizer, labels, sequence_length, stride=None, constrained=True):
        if not isinstance(sequence_length, int) or sequence_length < 3:
            raise ValueError(f"`sequence_length` must be an int >= 3. Received: sequence_length={sequence_length!r}")
        window = sequence_length - 2
        stride = max(window // 2, 1) if stride is None else check_positive_int("stride", stride)
        if stride > window:
            raise ValueError(f"`stride` must be at most the window, sequence_length - 2 = {window}. Received: {stride}")
        labels = [str(label) for label in labels]
        types, begins = _label_table(labels)
        num_classes = model.output.shape[-1]
        if num_classes != len(labels):
            raise ValueError(f"The model has {num_classes} classes but {len(labels)} labels were given: {labels}")
        self.model, self.tokenizer, self.labels = model, tokenizer, labels
        self.window, self.stride = window, stride
        self.constrained = bool(constrained)
        # Viterbi's additive scores: 0 where a transition (or a first tag) is allowed.
        inside = np.array([label.startswith("I-") for label in labels])
        allowed = (types[:, None] == types[None, :]) & (types[:, None] > 0) | ~inside[None, :]
        self._transitions = tf.constant(np.where(allowed, 0.0, _FORBIDDEN), tf.float32)
        self._first = tf.constant(np.where(inside, _FORBIDDEN, 0.0), tf.float32)
        self.entity_types = sorted({label[2:] for label in labels if label != "O"})
        self._types = tf.constant(types, tf.int32)  # 0 for O, else 1 + the type's index
        self._begins = tf.constant(begins)
        self._type_names = tf.constant([""] + self.entity_types)
        self._tag_words_function = None

    # ----------------------------------------------------------------- words

    def tag_words(self, pieces):
        """Each word's tag id and its probability.

        Args:
            pieces: ragged int `[batch, words, pieces]`, as `tokenizer.tokenize_words` gives
                (every word at least one piece).

        Returns:
            `(tag_ids, probabilities)`: ragged `[batch, words]` int32 and float32.
        """
        texts = pieces.merge_dims(1, 2)  # [batch, pieces]
        flat = tf.cast(texts.flat_values, tf.int32)
        rows, starts, sizes = sliding_windows(texts.row_lengths(), self.window, self.stride)
        # Each window's pieces, as indices into `flat`.
        index = tf.ragged.range(starts, starts + sizes) + tf.gather(texts.row_starts(), rows)[:, None]
        window_ids = tf.gather(flat, index)
        count = tf.shape(rows, out_type=tf.int64)[0]
        token_ids = tf.concat(
            [
                tf.fill([count, 1], self.tokenizer.cls_token_id),
                window_ids,
                tf.fill([count, 1], self.tokenizer.sep_token_id),
            ],
            axis=1,
        ).to_tensor(self.tokenizer.pad_token_id)
        features = {
            "token_ids": token_ids,
            "segment_ids": tf.zeros_like(token_ids),
            "padding_mask": tf.cast(token_ids != self.tokenizer.pad_token_id, tf.int32),
        }
        # An empty batch has no window: the model is not called on a batch of none.
        logits = tf.cond(
            count > 0,
            lambda: tf.cast(self.model(features, training=False), tf.float32),
            lambda: tf.zeros([0, tf.shape(token_ids)[1], len(self.labels)]),
        )
        window_logits = tf.RaggedTensor.from_tensor(logits[:, 1:], lengths=sizes)
        piece_logits = tf.math.unsorted_segment_mean(
            window_logits.flat_values, index.flat_values, tf.size(flat, out_type=tf.int64)
        )
        first_pieces = pieces.values.row_starts()  # each word's first piece, in `flat`
        probabilities = tf.RaggedTensor.from_row_splits(
            tf.nn.softmax(tf.gather(piece_logits, first_pieces), axis=-1), pieces.row_splits
        )
        if self.constrained:
            words = probabilities.row_lengths()
            tag_ids = viterbi_decode(
                tf.math.log(probabilities.to_tensor() + 1e-12), words, self._transitions, self._first
            )
            tag_ids = tf.RaggedTensor.from_tensor(tag_ids, lengths=words)
        else:
            tag_ids = tf.ragged.map_flat_values(tf.argmax, probabilities, axis=-1, output_type=tf.int32)
        tag_probabilities = tf.gather(probabilities.flat_values, tag_ids.flat_values, batch_dims=1)
        return tag_ids, tag_ids.with_flat_values(tag_probabilities)

    def predict_tags(self, sentences, batch_size=64):
        """The tag of each word of already split sentences (lists of word strings), eagerly.

        Returns a list of lists of tag strings, for `tfllm.evaluation.entity_scores`.
        """
        check_positive_int("batch_size", batch_size)
        if self._tag_words_function is None:
            self._tag_words_function = tf.function(
                lambda words: self.tag_words(self.tokenizer.tokenize_words(words))[0],
                input_signature=[tf.RaggedTensorSpec([None, None], tf.string, ragged_rank=1, row_splits_dtype=tf.int64)],
                autograph=False,
            )
        tags = []
        for start in range(0, len(sentences), batch_size):
            batch = [list(sentence) for sentence in sentences[start : start + batch_size]]
            words = tf.RaggedTensor.from_row_lengths(
                tf.constant([word for sentence in batch for word in sentence], tf.string),
                tf.constant([len(sentence) for sentence in batch], tf.int64),
            )
            ids = self._tag_words_function(words)
            tags.extend([self.labels[i] for i in row] for row in ids.to_list())
        return tags

    # ----------------------------------------------------------------- entities

    def entities(self, texts):
        """Entities in raw text: `[batch]` strings -> a dict of `[batch, max_entities]` tensors.

        `entity_texts` and `entity_types` (strings, "" where there is no entity),
        `entity_starts` and `entity_ends` (int32 offsets in Unicode characters into the text,
        end exclusive; -1 where none), `entity_scores` (float32; -1 where none). Entities are
        in text order; `max_entities` is the most any text of the batch has.
        """
        words, starts, ends = self.tokenizer.split_words(texts)
        tag_ids, probabilities = self.tag_words(self.tokenizer.tokenize_words(words))
        spans = self.spans(tag_ids, probabilities)
        first, last = spans["first_word"], spans["last_word"]
        # Words as indices into `starts.flat_values`: row start + position.
        offset = tf.gather(starts.row_starts(), first.value_rowids())
        entity_starts = tf.gather(starts.flat_values, offset + first.flat_values)
        entity_ends = tf.gather(ends.flat_values, offset + last.flat_values)
        # Invalid UTF-8 is read as U+FFFD, as `split_words` reads it.
        text = tf.gather(sanitize_utf8(texts), first.value_rowids())
        entity_texts = tf.strings.substr(text, entity_starts, entity_ends - entity_starts, unit="UTF8_CHAR")
        with_rows = first.with_flat_values
        return {
            "entity_texts": with_rows(entity_texts).to_tensor(""),
            "entity_types": with_rows(tf.gather(self._type_names, spans["type"].flat_values)).to_tensor(""),
            "entity_starts": with_rows(entity_starts).to_tensor(-1),
            "entity_ends": with_rows(entity_ends).to_tensor(-1),
            "entity_scores": spans["score"].to_tensor(-1.0),
        }

    def spans(self, tag_ids, probabilities):
        """Entities from word tags (the rules in the class docstring).

        Args:
            tag_ids: ragged int32 `[batch, words]`.
            probabilities: ragged float32 `[batch, words]`, each tag's probability.

        Returns:
            A dict of ragged `[batch, entities]` tensors: `type` (1 + index into
            `entity_types`), `first_word`, `last_word` (int64 word positions, inclusive),
            `score` (float32).
        """
        types = tf.gather(self._types, tag_ids.flat_values)
        begins = tf.gather(self._begins, tag_ids.flat_values)
        rows = tag_ids.value_rowids()
        position = tf.range(tf.size(types, out_type=tf.int64)) - tf.gather(tag_ids.row_starts(), rows)
        previous = tf.where(position == 0, 0, tf.roll(types, 1, axis=0))
        inside = types > 0
        opens = inside & (begins | (types != previous))
        # Each word inside an entity, numbered by its entity across the batch.
        entity = tf.boolean_mask(tf.cumsum(tf.cast(opens, tf.int64)) - 1, inside)
        count = tf.reduce_sum(tf.cast(opens, tf.int64))
        member_position = tf.boolean_mask(position, inside)
        first = tf.math.unsorted_segment_min(member_position, entity, count)
        last = tf.math.unsorted_segment_max(member_position, entity, count)
        score = tf.math.unsorted_segment_mean(tf.boolean_mask(probabilities.flat_values, inside), entity, count)

        def per_row(values):
            return tf.RaggedTensor.from_value_rowids(values, tf.boolean_mask(rows, opens), nrows=tag_ids.nrows())

        return {
            "type": per_row(tf.boolean_mask(types, opens)),
            "first_word": per_row(first),
            "last_word": per_row(last),
            "score": per_row(score),
        }


_FORBIDDEN = -1e9


def viterbi_decode(scores, lengths, transitions, first):
    """The best-scoring tag sequence of each row, in TensorFlow ops.

    Args:
        scores: float32 `[batch, time, tags]`, each position's score for each tag (e.g. log
            probabilities); positions at or past a row's length are ignored.
        lengths: int `[batch]`, each row's length.
        transitions: float32 `[tags, tags]`, added for tag `i` followed by tag `j`
            (a large negative number forbids it).
        first: float32 `[tags]`, added for the first tag of a row.

    Returns:
        int32 `[batch, time]`: the tags maximising the sum of the scores, transitions and
        first-tag score over each row's length (the last real tag repeated past it).
    """
    scores = tf.convert_to_tensor(scores, tf.float32)
    lengths = tf.cast(lengths, tf.int32)
    num_tags = tf.shape(scores)[2]
    steps = tf.transpose(scores, [1, 0, 2])  # [time, batch, tags]
    keep = tf.range(num_tags)[None, :] + tf.zeros_like(lengths)[:, None]  # "stay on this tag"

    def forward(carry, step):
        total, _ = carry
        position, emission = step
        candidates = total[:, :, None] + transitions[None]  # [batch, from, to]
        active = (position < lengths)[:, None]
        best = tf.where(active, tf.argmax(candidates, axis=1, output_type=tf.int32), keep)
        total = tf.where(active, tf.reduce_max(candidates, axis=1) + emission, total)
        return total, best

    def decode():
        start = first[None, :] + steps[0]
        totals, back = tf.scan(
            forward, (tf.range(1, tf.shape(steps)[0]), steps[1:]), initializer=(start, keep)
        )
        final = tf.concat([start[None], totals], axis=0)[-1]
        last = tf.argmax(final, axis=-1, output_type=tf.int32)
        # Back through the pointers: the tag before each position's tag.
        earlier = tf.scan(
            lambda tag, pointers: tf.gather(pointers, tag, batch_dims=1), back, initializer=last, reverse=True
        )
        return tf.transpose(tf.concat([earlier, last[None]], axis=0))

    return tf.cond(
        tf.shape(steps)[0] > 0, decode, lambda: tf.zeros([tf.shape(scores)[0], 0], tf.int32)
    )


def _label_table(labels):
    """For each IOB2 label: its type number (0 for O) and whether it is a `B-`."""
    if "O" not in labels:
        raise ValueError(f"The labels must hold 'O'. Received: {labels}")
    names = sorted({label[2:] for label in labels if label != "O"})
    types, begins = [], []
    for label in labels:
        if label == "O":
            types.append(0)
            begins.append(False)
        elif label[:2] in ("B-", "I-") and len(label) > 2:
            types.append(1 + names.index(label[2:]))
            begins.append(label.startswith("B-"))
        else:
            raise ValueError(f"Labels must be IOB2 tags (O, B-TYPE, I-TYPE). Received: {label!r}")
    return np.array(types, np.int32), np.array(begins)
