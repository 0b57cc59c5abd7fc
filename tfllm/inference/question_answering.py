"""Extractive question answering in TensorFlow ops: the same code trains, evaluates and serves.

A question and its context become windows `[CLS] question [SEP] context-window [SEP]`; a
context longer than one window is covered by several, `stride` pieces apart, so no answer is
lost to truncation. Answers are character spans of the context, on the tokenizer's words.
"""

import tensorflow as tf

from tfllm._validation import check_positive_int
from tfllm.inference.windows import sliding_windows
from tfllm.tokenizers._tensors import sanitize_utf8

_NEGATIVE = -1e9


class QuestionWindows:
    """How questions and contexts are cut into model inputs, in TensorFlow ops.

    The question keeps its first `max_question_length` pieces. The context's pieces are read in
    windows of `sequence_length - 3 - question pieces`, starting every `stride` pieces (the last
    window ends at the context's end; see `sliding_windows`). Each context piece carries the
    character span of its word (`WordPieceTokenizer.split_words`), so an answer found at pieces
    maps back to whole words of the context as written.

    Args:
        tokenizer: a `tfllm.tokenizers.WordPieceTokenizer`.
        sequence_length: int, the longest input the model reads.
        stride: int, the step between windows in pieces (default: half of the window left
            when the question is `max_question_length` pieces long).
        max_question_length: int, the most question pieces kept (default: a quarter of
            `sequence_length`); at least one piece of context always fits.
    """

    def __init__(self, tokenizer, sequence_length, stride=None, max_question_length=None):
        if not isinstance(sequence_length, int) or sequence_length < 5:
            raise ValueError(f"`sequence_length` must be an int >= 5. Received: sequence_length={sequence_length!r}")
        if max_question_length is None:
            max_question_length = max(sequence_length // 4, 1)
        check_positive_int("max_question_length", max_question_length)
        smallest_window = sequence_length - 3 - max_question_length
        if smallest_window < 1:
            raise ValueError(
                f"`max_question_length` must leave room for the context: at most sequence_length - 4 = "
                f"{sequence_length - 4}. Received: max_question_length={max_question_length}"
            )
        stride = max(smallest_window // 2, 1) if stride is None else check_positive_int("stride", stride)
        if stride > smallest_window:
            raise ValueError(
                f"`stride` must be at most the smallest context window, sequence_length - 3 - max_question_length "
                f"= {smallest_window}, or some context would be in no window. Received: stride={stride}"
            )
        self.tokenizer = tokenizer
        self.sequence_length, self.stride, self.max_question_length = sequence_length, stride, max_question_length

    def __call__(self, questions, contexts):
        """Windows for `[batch]` questions and contexts (strings).

        Returns a dict:
            `features`: `{"token_ids", "segment_ids", "padding_mask"}` int32 `[windows, length]`
                (padded to the longest window of the batch, at most `sequence_length`);
            `rows`: int64 `[windows]`, the question each window belongs to;
            `context_start`: int32 `[windows]`, the position of the window's first context piece;
            `piece_starts`, `piece_ends`: ragged int32 `[windows, pieces]`, the character span
                (into the context) of the word of each context piece of the window.
        """
        tokenizer = self.tokenizer
        question_words, _, _ = tokenizer.split_words(questions)
        question = tokenizer.tokenize_words(question_words).merge_dims(1, 2)[:, : self.max_question_length]
        words, word_starts, word_ends = tokenizer.split_words(contexts)
        pieces = tokenizer.tokenize_words(words)  # [batch, words, pieces]
        context = pieces.merge_dims(1, 2)  # [batch, pieces]
        piece_word = pieces.values.value_rowids()  # each piece's word, in `words.flat_values`
        piece_starts = tf.gather(word_starts.flat_values, piece_word)
        piece_ends = tf.gather(word_ends.flat_values, piece_word)

        question_lengths = question.row_lengths()
        window = self.sequence_length - 3 - question_lengths
        rows, starts, sizes = sliding_windows(context.row_lengths(), window, self.stride)
        index = tf.ragged.range(starts, starts + sizes) + tf.gather(context.row_starts(), rows)[:, None]
        count = tf.shape(rows, out_type=tf.int64)[0]

        def column(token_id):
            return tf.fill([count, 1], tf.cast(token_id, context.dtype))

        window_question = tf.gather(question, rows)
        first = tf.concat([column(tokenizer.cls_token_id), window_question, column(tokenizer.sep_token_id)], axis=1)
        second = tf.concat([tf.gather(context.flat_values, index), column(tokenizer.sep_token_id)], axis=1)
        token_ids = tf.concat([first, second], axis=1)
        segment_ids = tf.concat([tf.zeros_like(first), tf.ones_like(second)], axis=1)
        features = {
            "token_ids": tf.cast(token_ids.to_tensor(tokenizer.pad_token_id), tf.int32),
            "segment_ids": tf.cast(segment_ids.to_tensor(0), tf.int32),
            "padding_mask": tf.cast(tf.ones_like(token_ids).to_tensor(0), tf.int32),
        }
        return {
            "features": features,
            "rows": rows,
            "context_start": tf.cast(first.row_lengths(), tf.int32),
            "piece_starts": tf.gather(piece_starts, index),
            "piece_ends": tf.gather(piece_ends, index),
        }


class QuestionAnswerer:
    """Answers questions from a context with a `tfllm.models.BERTQuestionAnswerer`.

    Each window (see `QuestionWindows`) scores every span of its context pieces from `i` to
    `j` as `start_logits[i] + end_logits[j]`, for `i <= j < i + max_answer_length`; spans
    outside the context (the question, `[CLS]`, `[SEP]`, padding) are never answers. The best
    spans over all the windows of a question are its answers, ranked by that score, as the
    original BERT ranks them; two spans on the same words count once. An answer's `score` is
    its probability within its window: softmax of the start logits over the window's context
    pieces at `i`, times that of the end logits at `j`.

    Every method is TensorFlow ops only, so it runs in `tf.function`s and SavedModels.

    Args:
        model: a `tfllm.models.BERTQuestionAnswerer` (or any model mapping BERT inputs to
            `{"start_logits", "end_logits"}`, each `(batch, length)`).
        tokenizer: the `tfllm.tokenizers.WordPieceTokenizer` it was trained with.
        sequence_length, stride, max_question_length: as in `QuestionWindows`.
        max_answer_length: int, the most pieces in an answer.
    """

    def __init__(self, model, tokenizer, sequence_length, stride=None, max_question_length=None, max_answer_length=30):
        self.windows = QuestionWindows(tokenizer, sequence_length, stride, max_question_length)
        self.max_answer_length = check_positive_int("max_answer_length", max_answer_length)
        output = model.output
        if not (isinstance(output, dict) and {"start_logits", "end_logits"} <= set(output)):
            raise ValueError(
                "A question answerer needs a model whose outputs are a dict with 'start_logits' and 'end_logits' "
                f"(a `tfllm.models.BERTQuestionAnswerer`). Received: {type(model).__name__} {model.name!r}"
            )
        self.model, self.tokenizer = model, tokenizer
        self._answer_function = None

    def answers(self, questions, contexts, n_best=1):
        """The best `n_best` answers to each question: a dict of `[batch, n_best]` tensors.

        `answer` (string, a slice of the context as written; invalid UTF-8 reads as U+FFFD),
        `answer_start`, `answer_end` (int32 offsets in Unicode characters into the context,
        end exclusive), `score` (float32), best first. A question with fewer candidate
        spans (an empty context) gets "" and -1 in the slots left.
        """
        check_positive_int("n_best", n_best)
        batch = tf.shape(questions, out_type=tf.int64)[0]
        windows = self.windows(questions, contexts)
        features, rows = windows["features"], windows["rows"]
        count = tf.shape(rows, out_type=tf.int64)[0]
        length = tf.shape(features["token_ids"])[1]
        # An empty batch has no window: the model is not called on a batch of none.
        start_logits, end_logits = tf.cond(
            count > 0,
            lambda: self._logits(features),
            lambda: (tf.zeros([0, length]), tf.zeros([0, length])),
        )
        # Context pieces only: position p of a window is its piece p - context_start.
        sizes = windows["piece_starts"].row_lengths()
        position = tf.range(length)[None, :] - windows["context_start"][:, None]
        in_context = (position >= 0) & (position < tf.cast(sizes, tf.int32)[:, None])
        start_logits = tf.where(in_context, start_logits, _NEGATIVE)
        end_logits = tf.where(in_context, end_logits, _NEGATIVE)
        start_log_p = tf.nn.log_softmax(start_logits, axis=-1)
        end_log_p = tf.nn.log_softmax(end_logits, axis=-1)

        # Every span (start i, length k + 1) of each window: [windows, length, max_answer_length].
        span = tf.range(self.max_answer_length)
        end_index = tf.minimum(tf.range(length)[:, None] + span[None, :], length - 1)
        valid = in_context[:, :, None] & tf.gather(in_context, end_index, axis=1)
        valid &= (tf.range(length)[:, None] + span[None, :] < length)[None]
        span_logits = start_logits[:, :, None] + tf.gather(end_logits, end_index, axis=1)
        flat = [count, tf.cast(length * self.max_answer_length, tf.int64)]
        span_logits = tf.reshape(tf.where(valid, span_logits, -float("inf")), flat)
        span_log_p = start_log_p[:, :, None] + tf.gather(end_log_p, end_index, axis=1)
        k = tf.minimum(n_best, tf.shape(span_logits)[1])
        top_logits, top = tf.math.top_k(span_logits, k=k)  # [windows, k]
        top_log_p = tf.gather(tf.reshape(span_log_p, flat), top, batch_dims=1)
        first_piece = top // self.max_answer_length - windows["context_start"][:, None]
        last_piece = first_piece + top % self.max_answer_length

        # Candidates across windows: character spans, best first within each question.
        found = tf.math.is_finite(top_logits)

        def character(offsets, piece):
            dense = offsets.to_tensor(-1, shape=[count, tf.cast(length, tf.int64)])
            return tf.gather(dense, tf.clip_by_value(piece, 0, length - 1), batch_dims=1)

        starts = character(windows["piece_starts"], first_piece)
        ends = character(windows["piece_ends"], last_piece)
        starts, ends = (tf.boolean_mask(values, found) for values in (starts, ends))
        logits = tf.boolean_mask(top_logits, found)
        log_p = tf.boolean_mask(top_log_p, found)
        question = tf.boolean_mask(tf.broadcast_to(rows[:, None], tf.shape(top_logits, out_type=tf.int64)), found)
        order = tf.argsort(logits, direction="DESCENDING", stable=True)
        order = tf.gather(order, tf.argsort(tf.gather(question, order), stable=True))
        starts, ends, log_p, question = (tf.gather(values, order) for values in (starts, ends, log_p, question))
        # Two windows (or two pieces of one word) can give the same span: keep its best.
        key = tf.strings.as_string(question) + ":" + tf.strings.as_string(starts) + ":" + tf.strings.as_string(ends)
        unique, slot = tf.unique(key)
        keep = tf.math.unsorted_segment_min(tf.range(tf.size(slot)), slot, tf.size(unique))
        starts, ends, log_p, question = (tf.gather(values, keep) for values in (starts, ends, log_p, question))

        def per_question(values, padding):
            ragged = tf.RaggedTensor.from_value_rowids(values, question, nrows=batch)[:, :n_best]
            return ragged.to_tensor(padding, shape=[batch, n_best])

        context = tf.gather(sanitize_utf8(contexts), question)
        answer = tf.strings.substr(context, starts, ends - starts, unit="UTF8_CHAR")
        return {
            "answer": per_question(answer, ""),
            "answer_start": per_question(starts, -1),
            "answer_end": per_question(ends, -1),
            "score": per_question(tf.exp(log_p), -1.0),
        }

    def _logits(self, features):
        outputs = self.model(features, training=False)
        return tf.cast(outputs["start_logits"], tf.float32), tf.cast(outputs["end_logits"], tf.float32)

    def predict(self, questions, contexts, batch_size=64):
        """The best answer text to each question, eagerly: a list of strings, for
        `tfllm.evaluation.squad_scores`."""
        check_positive_int("batch_size", batch_size)
        if len(questions) != len(contexts):
            raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts.")
        if self._answer_function is None:
            spec = tf.TensorSpec([None], tf.string)
            self._answer_function = tf.function(
                lambda q, c: self.answers(q, c)["answer"][:, 0], input_signature=[spec, spec], autograph=False
            )
        answers = []
        for start in range(0, len(questions), batch_size):
            batch = self._answer_function(
                tf.constant(list(questions[start : start + batch_size]), tf.string),
                tf.constant(list(contexts[start : start + batch_size]), tf.string),
            )
            answers.extend(text.decode("utf-8") for text in batch.numpy())
        return answers
