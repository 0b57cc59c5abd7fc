"""Classification data: TSV / CSV / JSONL files of text, optional text pair, and label."""

import collections
import csv
import json
import os

import keras_hub
import tensorflow as tf

from tfllm.data._files import check_files

AUTOTUNE = tf.data.AUTOTUNE

ClassificationExamples = collections.namedtuple("ClassificationExamples", ["texts", "pairs", "labels", "line_numbers"])


def read_classification_file(path, text_column="sentence", pair_column=None, label_column="label", has_header=None):
    """Reads `(texts, pairs, labels)` from a TSV, CSV or JSONL file, checking every row.

    The format follows the extension (`.tsv`, `.csv`, `.jsonl`/`.json`). Columns are
    named by the header (TSV/CSV) or the keys (JSONL); a TSV/CSV without a header
    (`has_header=False`, or detected when the first row lacks `text_column`) is read
    as `text, [pair,] label` by position.

    Returns:
        `ClassificationExamples(texts, pairs, labels, line_numbers)`: lists of
        strings (`pairs` is None without a pair column) and each example's line.

    Raises:
        ValueError naming the file and line for a row without a text or a label,
        a missing column or a malformed JSON line; an empty file.
    """
    (path,) = check_files(path)
    extension = os.path.splitext(path)[1].lower()
    texts, pairs, labels, line_numbers = [], [], [], []

    def add(row, line_number):
        text, label = row.get(text_column), row.get(label_column)
        pair = row.get(pair_column) if pair_column else None
        if text is None or text == "":
            raise ValueError(f"{path}, line {line_number}: no text in column {text_column!r}.")
        if label is None or str(label).strip() == "":
            raise ValueError(f"{path}, line {line_number}: the row has no label (column {label_column!r}).")
        if pair_column and (pair is None or pair == ""):
            raise ValueError(f"{path}, line {line_number}: no text pair in column {pair_column!r}.")
        texts.append(text)
        labels.append(str(label).strip())
        line_numbers.append(line_number)
        if pair_column:
            pairs.append(pair)

    with open(path, encoding="utf-8", newline="") as file:
        if extension in (".jsonl", ".json"):
            for line_number, line in enumerate(file, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}, line {line_number}: not valid JSON ({error.msg}).") from None
                add(row, line_number)
        else:
            delimiter = "\t" if extension == ".tsv" else ","
            reader = csv.reader(file, delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)
            rows = iter(reader)
            first = next(rows, None)
            if has_header is None:
                has_header = first is not None and text_column in first
            if has_header:
                columns = first
                for name in (text_column, label_column) + ((pair_column,) if pair_column else ()):
                    if name not in columns:
                        raise ValueError(f"{path}: no column {name!r} in the header {columns}.")
            else:
                columns = [text_column] + ([pair_column] if pair_column else []) + [label_column]
                rows = _chain([first], rows)
            for row in rows:
                line_number = reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue
                add(dict(zip(columns, row)), line_number)
    if not texts:
        raise ValueError(f"{path} holds no examples.")
    return ClassificationExamples(texts, pairs if pair_column else None, labels, line_numbers)


def _chain(*iterables):
    for iterable in iterables:
        yield from iterable


def build_label_vocabulary(labels):
    """The distinct labels, sorted (numerically when all are integers): index = class id."""
    labels = set(labels)
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def classification_dataset(
    path,
    tokenizer,
    sequence_length,
    batch_size,
    label_vocabulary=None,
    text_column="sentence",
    pair_column=None,
    label_column="label",
    has_header=None,
    shuffle_buffer=10_000,
    seed=None,
    drop_remainder=False,
):
    """Tokenized, packed `({"token_ids", "segment_ids", "padding_mask"}, label_id)` batches.

    Texts are packed as `[CLS] text [SEP]` or `[CLS] text [SEP] pair [SEP]`, truncated
    to `sequence_length` (the pair is truncated first).

    Args:
        path: a `.tsv`, `.csv` or `.jsonl` file (see `read_classification_file`).
        tokenizer: a WordPiece tokenizer with `cls_token_id`, `sep_token_id`,
            `pad_token_id`.
        label_vocabulary: the class names, index = class id. None builds it from
            this file (the training file); give the training file's vocabulary
            when reading validation data.
        shuffle_buffer: 0 or None keeps the file order (for evaluation).

    Returns:
        `(dataset, label_vocabulary)`.

    Raises:
        ValueError naming the file and line of a label missing from
        `label_vocabulary`, plus everything `read_classification_file` raises.
    """
    texts, pairs, labels, line_numbers = read_classification_file(
        path, text_column, pair_column, label_column, has_header
    )
    if label_vocabulary is None:
        label_vocabulary = build_label_vocabulary(labels)
    index = {label: i for i, label in enumerate(label_vocabulary)}
    label_ids = []
    for label, line_number in zip(labels, line_numbers):
        if label not in index:
            raise ValueError(
                f"{path}, line {line_number}: label {label!r} was never seen in training "
                f"(known labels: {list(label_vocabulary)})."
            )
        label_ids.append(index[label])

    pack = BERTInputPacker(tokenizer, sequence_length)
    columns = (texts,) if pairs is None else (texts, pairs)
    dataset = tf.data.Dataset.from_tensor_slices((columns, tf.constant(label_ids, tf.int32)))
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed)

    def encode(segments, label_id):
        return pack(*segments), label_id

    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder).map(encode, num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE), list(label_vocabulary)


class BERTInputPacker:
    """Tokenizes one text, or a text and its pair, and packs them as BERT's inputs.

    `[CLS] text [SEP]` or `[CLS] text [SEP] pair [SEP]`, truncated to `sequence_length`
    (the pair first: keras-hub's `"waterfall"` truncation, which needs no TF Text op, so a
    served model loads on any TF Serving), padded with `[PAD]`. The training pipeline
    (`classification_dataset`) and the exported serving signatures use this one packer, so a
    served model sees exactly the inputs it was trained on.

    Args:
        tokenizer: a WordPiece tokenizer with `cls_token_id`, `sep_token_id` and
            `pad_token_id` (`tfllm.tokenizers.WordPieceTokenizer`).
        sequence_length: int, the packed length.

    Example:

    >>> pack = BERTInputPacker(tokenizer, sequence_length=16)
    >>> features = pack(tf.constant(["a premise"]), tf.constant(["a hypothesis"]))
    >>> sorted(features)
    ['padding_mask', 'segment_ids', 'token_ids']
    """

    def __init__(self, tokenizer, sequence_length):
        if not isinstance(sequence_length, int) or sequence_length < 3:
            raise ValueError(f"`sequence_length` must be an int >= 3. Received: sequence_length={sequence_length!r}")
        self.tokenizer = tokenizer
        self.sequence_length = sequence_length
        self.packer = keras_hub.layers.MultiSegmentPacker(
            sequence_length=sequence_length,
            start_value=tokenizer.cls_token_id,
            end_value=tokenizer.sep_token_id,
            pad_value=tokenizer.pad_token_id,
            truncate="waterfall",
        )

    def __call__(self, texts, pairs=None):
        """`[batch]` strings (and pairs) -> int32 `{"token_ids", "segment_ids", "padding_mask"}`."""
        segments = (texts,) if pairs is None else (texts, pairs)
        token_ids, segment_ids = self.packer(tuple(self.tokenizer(segment) for segment in segments))
        return {
            "token_ids": tf.cast(token_ids, tf.int32),
            "segment_ids": tf.cast(segment_ids, tf.int32),
            "padding_mask": tf.cast(token_ids != self.tokenizer.pad_token_id, tf.int32),
        }
