"""Extractive question answering data (SQuAD): windows of question and context, answer positions."""

import numpy as np
import tensorflow as tf

from tfllm._validation import check_positive_int
from tfllm.data.bucketing import bucket_by_length

CLS_POSITION = 0  # Where both labels point in a window that does not hold the whole answer.


def question_answering_windows(examples, tokenizer, sequence_length, stride=None, max_question_length=None, chunk=512):
    """Every window of every answered example, with the answer's first and last piece positions.

    The windows are cut by `tfllm.inference.QuestionWindows` — the code the served model
    runs — so training sees the contexts exactly as serving does. The first answer of each
    example is the target: its start position is the first context piece whose word ends after
    the answer's first character, its end position the last piece whose word starts before the
    answer's end. A window whose words do not hold the whole answer points both at `[CLS]`
    (position 0), as BERT is trained on SQuAD.

    Args:
        examples: `tfllm.data.QAExample`s (from `read_squad`), or any objects with `question`,
            `context`, `answers` and `answer_starts`. Examples without an answer are skipped.
        tokenizer: a `tfllm.tokenizers.WordPieceTokenizer`.
        sequence_length, stride, max_question_length: as in `tfllm.inference.QuestionWindows`.
        chunk: examples windowed at a time.

    Returns:
        `(token_ids, segment_ids, starts, ends)`: lists of int32 NumPy arrays (one per window,
        unpadded) and int32 NumPy arrays of the answer positions.

    Raises:
        ValueError: no example has an answer, or an answer's offsets lie outside its context.
    """
    from tfllm.inference import QuestionWindows

    windows = QuestionWindows(tokenizer, sequence_length, stride, max_question_length)
    spec = tf.TensorSpec([None], tf.string)
    cut = tf.function(windows.__call__, input_signature=[spec, spec], autograph=False)
    answered = [example for example in examples if example.answers]
    if not answered:
        raise ValueError(f"None of the {len(examples)} examples has an answer to train on.")
    token_ids, segment_ids, starts, ends = [], [], [], []
    for begin in range(0, len(answered), chunk):
        batch = answered[begin : begin + chunk]
        spans = []
        for example in batch:
            first, text = example.answer_starts[0], example.answers[0]
            if not 0 <= first <= first + len(text) <= len(example.context):
                raise ValueError(
                    f"Question {getattr(example, 'id', '?')!r}: the answer at {first}..{first + len(text)} lies outside "
                    f"its context of {len(example.context)} characters."
                )
            spans.append((first, first + len(text)))
        result = cut(tf.constant([e.question for e in batch]), tf.constant([e.context for e in batch]))
        ids = result["features"]["token_ids"].numpy()
        segments = result["features"]["segment_ids"].numpy()
        lengths = result["features"]["padding_mask"].numpy().sum(axis=1)
        context_start = result["context_start"].numpy()
        for window, (row, piece_starts, piece_ends) in enumerate(
            zip(result["rows"].numpy(), result["piece_starts"].to_list(), result["piece_ends"].to_list())
        ):
            answer_start, answer_end = spans[row]
            start = end = CLS_POSITION
            if piece_starts and piece_starts[0] <= answer_start and answer_end <= piece_ends[-1]:
                first = int(np.argmax(np.array(piece_ends) > answer_start))
                last = len(piece_starts) - 1 - int(np.argmax(np.array(piece_starts[::-1]) < answer_end))
                if first <= last:
                    start, end = context_start[window] + first, context_start[window] + last
            token_ids.append(ids[window, : lengths[window]])
            segment_ids.append(segments[window, : lengths[window]])
            starts.append(start)
            ends.append(end)
    return token_ids, segment_ids, np.array(starts, np.int32), np.array(ends, np.int32)


def question_answering_dataset(
    examples,
    tokenizer,
    sequence_length,
    batch_size,
    stride=None,
    max_question_length=None,
    shuffle_buffer=10_000,
    seed=None,
    boundaries=None,
):
    """Batches of `[CLS] question [SEP] context-window [SEP]` with answer positions, for `model.fit`.

    See `question_answering_windows` for how windows and positions are made.

    Args:
        examples: `tfllm.data.QAExample`s (from `read_squad`).
        tokenizer: a `tfllm.tokenizers.WordPieceTokenizer`.
        sequence_length, stride, max_question_length: as in `tfllm.inference.QuestionWindows`.
        batch_size: int.
        shuffle_buffer: windows shuffled at a time; 0 or None keeps the order.
        seed: shuffling seed.
        boundaries: increasing ints below `sequence_length`, e.g. `(128, 192)`: batches are
            regrouped by length and cut to their bucket (`tfllm.data.bucket_by_length`).

    Returns:
        A `tf.data.Dataset` of `(features, labels)`: features `{"token_ids", "segment_ids",
        "padding_mask"}` int32 `(batch, length)`, labels `{"start_logits", "end_logits"}` int32
        `(batch,)`, the names of `tfllm.models.BERTQuestionAnswerer`'s outputs.
    """
    check_positive_int("batch_size", batch_size)
    token_ids, segment_ids, starts, ends = question_answering_windows(
        examples, tokenizer, sequence_length, stride, max_question_length
    )
    lengths = [len(ids) for ids in token_ids]
    token_ids = tf.RaggedTensor.from_row_lengths(np.concatenate(token_ids), lengths)
    segment_ids = tf.RaggedTensor.from_row_lengths(np.concatenate(segment_ids), lengths)
    dataset = tf.data.Dataset.range(len(lengths))
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

    def example(index):
        ids = token_ids[index]
        features = {"token_ids": ids, "segment_ids": segment_ids[index], "padding_mask": tf.ones_like(ids)}
        return features, {"start_logits": tf.gather(starts, index), "end_logits": tf.gather(ends, index)}

    dataset = dataset.map(example).padded_batch(
        batch_size,
        padded_shapes=({name: [sequence_length] for name in ("token_ids", "segment_ids", "padding_mask")}, {"start_logits": [], "end_logits": []}),
        padding_values=({"token_ids": tokenizer.pad_token_id, "segment_ids": 0, "padding_mask": 0}, {"start_logits": 0, "end_logits": 0}),
    )
    if boundaries:
        return bucket_by_length(dataset, batch_size, [b for b in boundaries if b < sequence_length] or [sequence_length])
    return dataset.prefetch(tf.data.AUTOTUNE)
