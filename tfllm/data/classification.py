"""Classification data: TSV / CSV / JSONL files of text, optional text pair, and label."""

import collections
import csv
import io
import json
import os
import re

import keras_hub
import tensorflow as tf

from tfllm.data._files import check_files

AUTOTUNE = tf.data.AUTOTUNE

_HAS_HEADER_HINT = (
    "pass has_header=True or has_header=False (--has-header / --no-header in examples/finetune_classifier.py)"
)
_BYTE_ORDER_MARK = "\ufeff"
_INTEGER = re.compile(r"[+-]?[0-9]+")
_SIGNS_AND_DIGITS = re.compile(r"[+-]*[0-9]+")
_LINE_END = re.compile(rb"\r\n|\r|\n")


class ClassificationExamples(
    collections.namedtuple("ClassificationExamples", ["texts", "pairs", "labels", "line_numbers"])
):
    """What `read_classification_file` read.

    A tuple `(texts, pairs, labels, line_numbers)`: lists of strings (`pairs` is None without a
    pair column) and the line each example starts on. The attribute `header` holds the cells of
    the header row, or None (JSONL, or a TSV/CSV without a header); it is not a tuple field, so
    the four lists unpack as they always have.
    """

    def __new__(cls, texts, pairs, labels, line_numbers, header=None):
        examples = super().__new__(cls, texts, pairs, labels, line_numbers)
        examples.header = header
        return examples


def read_classification_file(path, text_column="sentence", pair_column=None, label_column="label", has_header=None):
    """Reads `(texts, pairs, labels)` from a TSV, CSV or JSONL file, checking every row.

    The format follows the extension (`.tsv`, `.csv`, `.jsonl`/`.json`). The file must be UTF-8;
    a leading byte-order mark (U+FEFF) is dropped, in every format. Texts are kept exactly as
    written; labels lose surrounding whitespace. Blank lines are skipped.

    JSONL: one object per line, its keys naming the columns. Texts must be strings; a label may
    be a string, a number or a boolean (`true` reads as the label `"true"`).

    TSV / CSV: TSV fields are split at every tab (no quoting); CSV follows the `csv` module's
    quoting. A file without a header is read by position as `text, [pair,] label`. Whether the
    first row is a header (`has_header=None`) is decided so:

    1. a first row whose cells name every configured column (`text_column`, `pair_column`,
       `label_column`; case aside) is a header, and the columns are read by those names;
    2. else a first row whose label cell (the last, by position) is a label of another row is
       an example;
    3. else it is a header when that cell is `label_column` or "label", when every other label
       is an integer and it is not, or when the other labels are a small repeated set (each
       seen twice on average) it is not in. Its columns are read by position: it must name at
       least one of `text, [pair,] label` in its place and none elsewhere, or a ValueError asks
       to name the columns or to pass `has_header`;
    4. else (a first label seen nowhere else, in a file that does not settle it) the reader
       cannot tell, and raises a ValueError asking for `has_header=True` or `has_header=False`.

    `has_header=True` reads the first row as a header (by name when it names the columns, else
    by position when it has one cell per column and names none out of place);
    `has_header=False` reads every row as an example.

    Returns:
        `ClassificationExamples(texts, pairs, labels, line_numbers)`, with `.header`.

    Raises:
        ValueError naming the file and line (and column where one applies) for: a byte that is
        not UTF-8; a row without a text or a label; a row with more cells than the header (or
        than `text, [pair,] label` without one: a tab inside a TSV text); a header missing a
        column; a later row repeating the header; a field longer than the `csv` module's limit
        (`csv.field_size_limit()`, often an unclosed quote); a malformed JSON line, a JSON line
        that is not an object, or a JSON text that is not a string; a first row the reader
        cannot place (see above); and a file that holds no example.
    """
    (path,) = check_files(path)
    extension = os.path.splitext(path)[1].lower()
    jsonl = extension in (".jsonl", ".json")
    text = _read_utf8(path, jsonl)
    examples = _Examples(path, text_column, pair_column, label_column)
    if jsonl:
        header = None
        for line_number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {line_number}: not valid JSON ({error.msg}).") from None
            if not isinstance(row, dict):
                raise ValueError(
                    f"{path}, line {line_number}: each line must be a JSON object ({{\"{text_column}\": ..., "
                    f"\"{label_column}\": ...}}); this one is a {_json_type(row)}."
                )
            examples.add(row, line_number)
    else:
        header = _read_delimited(path, text, "\t" if extension == ".tsv" else ",", examples, has_header)
    if not examples.texts:
        raise ValueError(f"{path} holds no examples.")
    return ClassificationExamples(
        examples.texts, examples.pairs if pair_column else None, examples.labels, examples.line_numbers, header
    )


def _read_utf8(path, jsonl):
    """The file's text, without a leading byte-order mark; a ValueError at a byte that is not UTF-8."""
    with open(path, "rb") as file:
        data = file.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        before = data[: error.start]
        # Lines as the readers count them: JSON Lines end at "\n", CSV records at any line end.
        ends = [match.end() for match in re.finditer(rb"\n" if jsonl else _LINE_END, before)]
        line_start = ends[-1] if ends else 0
        column = len(data[line_start : error.start].decode("utf-8")) + 1
        hint = ""
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            hint = " (the file starts with a UTF-16 byte-order mark: save it as UTF-8)"
        raise ValueError(
            f"{path}, line {len(ends) + 1}, column {column}: the byte {data[error.start]:#04x} is not UTF-8"
            f"{hint}; classification files must be UTF-8 text."
        ) from None
    return text.removeprefix(_BYTE_ORDER_MARK)


def _read_delimited(path, text, delimiter, examples, has_header):
    """Adds the rows of a TSV / CSV text to `examples`; returns the header's cells or None."""
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    records = []
    while True:
        line_number = reader.line_num + 1  # a record starts on the line after the last one read
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            if "field larger than field limit" in str(error):
                raise ValueError(
                    f"{path}, line {line_number}: a field is longer than the csv module's limit of "
                    f"{csv.field_size_limit()} characters (an unclosed quote reads on to the end of the file; "
                    "csv.field_size_limit(n) raises the limit)."
                ) from None
            raise ValueError(f"{path}, line {line_number}: {error}.") from None
        if any(cell.strip() for cell in row):
            records.append((line_number, row))
    if not records:
        raise ValueError(f"{path} holds no examples.")
    layout = examples.layout
    if has_header is None:
        has_header = _first_row_is_header(path, records, layout, examples.label_column)
    if has_header:
        header_line, header = records.pop(0)
        columns = _header_columns(path, header_line, header, layout)
        width = len(header)
    else:
        header, columns, width = None, {name: i for i, name in enumerate(layout)}, len(layout)
    for line_number, row in records:
        if header is not None and row == header:
            raise ValueError(f"{path}, line {line_number}: the row repeats the header {header} (two files joined?).")
        if len(row) > width:
            where = f"the header has {width}" if header else f"a file without a header is read as {layout}"
            hint = "a tab inside a text? TSV has no quoting" if delimiter == "\t" else "quote a field holding a comma"
            raise ValueError(f"{path}, line {line_number}: {len(row)} cells, where {where} ({hint}).")
        examples.add({name: row[i] if i < len(row) else None for name, i in columns.items()}, line_number)
    return header


def _first_row_is_header(path, records, layout, label_column):
    """Whether the first (non-blank) record is a header; see `read_classification_file`."""
    line_number, first = records[0]
    names = [name.lower() for name in layout]
    cells = [cell.strip().lower() for cell in first]
    if all(name in cells for name in names):
        return True
    if len(first) != len(layout):
        if any(name in cells for name in names):
            return True  # a header; `_header_columns` names the column it lacks
        raise ValueError(
            f"{path}, line {line_number}: cannot tell whether {first} is a header: it names no column of "
            f"{layout}, and it has {len(first)} cells where a file without a header is read as {layout}. "
            f"Name the columns (text_column=, pair_column=, label_column=), or {_HAS_HEADER_HINT}."
        )
    label = first[-1].strip()
    others = [row[-1].strip() for _, row in records[1:] if len(row) == len(layout)]
    if label in others:
        return False
    distinct = set(others)
    if (
        label.lower() in (label_column.lower(), "label")
        or (others and all(_INTEGER.fullmatch(other) for other in distinct) and not _INTEGER.fullmatch(label))
        or (others and len(others) >= 2 * len(distinct))
    ):
        if not any(cell == name for cell, name in zip(cells, names)):
            raise ValueError(
                f"{path}, line {line_number}: {first} looks like a header (its label {label!r} is not a label of "
                f"any other row) but names none of the columns {layout}: pass has_header=True to read its "
                "columns by position, or name them with text_column=, pair_column=, label_column=; pass "
                "has_header=False if it is an example (--has-header / --no-header in "
                "examples/finetune_classifier.py)."
            )
        return True
    raise ValueError(
        f"{path}, line {line_number}: cannot tell whether {first} is a header or an example: its label {label!r} "
        f"is not a label of any other row. {_HAS_HEADER_HINT[0].upper()}{_HAS_HEADER_HINT[1:]}."
    )


def _header_columns(path, line_number, header, layout):
    """`{column name: cell index}` for a header row; a ValueError when it cannot give one."""
    exact = {name: header.index(name) for name in layout if name in header}
    lowered = [cell.strip().lower() for cell in header]
    for name in layout:
        if name not in exact and lowered.count(name.lower()) == 1:
            exact[name] = lowered.index(name.lower())
    if len(exact) == len(layout):
        return exact
    if len(header) == len(layout) and all(exact[name] == i for i, name in enumerate(layout) if name in exact):
        return {name: i for i, name in enumerate(layout)}
    missing = [name for name in layout if name not in exact]
    raise ValueError(
        f"{path}, line {line_number}: the header {header} has no column {missing[0]!r}; name the columns with "
        f"text_column=, pair_column=, label_column= (now {layout}), or pass has_header=False if the row is "
        "an example."
    )


class _Examples:
    """The lists being read, and the checks every row passes."""

    def __init__(self, path, text_column, pair_column, label_column):
        self.path, self.text_column, self.pair_column, self.label_column = path, text_column, pair_column, label_column
        self.layout = [text_column] + ([pair_column] if pair_column else []) + [label_column]
        self.texts, self.pairs, self.labels, self.line_numbers = [], [], [], []

    def add(self, row, line_number):
        path = self.path
        text, label = row.get(self.text_column), row.get(self.label_column)
        if text is None or text == "":
            raise ValueError(f"{path}, line {line_number}: no text in column {self.text_column!r}.")
        _check_string(text, path, line_number, self.text_column)
        if label is None or (isinstance(label, str) and label.strip() == ""):
            raise ValueError(f"{path}, line {line_number}: the row has no label (column {self.label_column!r}).")
        if isinstance(label, (bool, int, float)):
            label = json.dumps(label)
        elif not isinstance(label, str):
            raise ValueError(
                f"{path}, line {line_number}: column {self.label_column!r} must hold a string or a number; it "
                f"holds {label!r} (a {_json_type(label)})."
            )
        if self.pair_column:
            pair = row.get(self.pair_column)
            if pair is None or pair == "":
                raise ValueError(f"{path}, line {line_number}: no text pair in column {self.pair_column!r}.")
            _check_string(pair, path, line_number, self.pair_column)
            self.pairs.append(pair)
        self.texts.append(text)
        self.labels.append(label.strip())
        self.line_numbers.append(line_number)


def _check_string(value, path, line_number, column):
    if not isinstance(value, str):
        raise ValueError(
            f"{path}, line {line_number}: column {column!r} must hold a string; it holds {value!r} "
            f"(a {_json_type(value)})."
        )


def _json_type(value):
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {dict: "object", list: "list", str: "string"}.get(type(value), type(value).__name__)


def _integer_label_problem(labels):
    """`(label, what is wrong)` for the first label that spoils labels of signs and digits, else None.

    Labels that are all integers are classes sorted numerically; among them, a label that is
    not one (`"--1"`) or a second spelling of one (`"01"` beside `"1"`) is almost surely a typo.
    """
    if not labels or not all(_SIGNS_AND_DIGITS.fullmatch(label) for label in labels):
        return None
    spellings = {}
    for label in labels:
        if not _INTEGER.fullmatch(label):
            return label, f"label {label!r} is not an integer, while the labels are signs and digits"
        first = spellings.setdefault(int(label), label)
        if first != label:
            return label, f"label {label!r} is the same integer as {first!r}: one class would have two names"
    return None


def build_label_vocabulary(labels):
    """The distinct labels, sorted: index = class id.

    Labels that are all integers (ASCII digits, one optional sign) sort numerically, others as
    strings.

    Raises:
        ValueError for labels of signs and digits that are not all integers (`"--1"`) or that
        spell one integer twice (`"1"` and `"01"`).
    """
    labels = list(labels)
    problem = _integer_label_problem(labels)
    if problem:
        raise ValueError(problem[1] + ".")
    distinct = set(labels)
    if distinct and all(_INTEGER.fullmatch(label) for label in distinct):
        return sorted(distinct, key=lambda label: (int(label), label))
    return sorted(distinct)


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
        text_column, pair_column, label_column, has_header: the columns, and whether
            a TSV/CSV file starts with a header (None detects it), as in
            `read_classification_file`.
        shuffle_buffer: 0 or None keeps the file order (for evaluation).

    Returns:
        `(dataset, label_vocabulary)`.

    Raises:
        ValueError naming the file and line of a label missing from
        `label_vocabulary`, or, building the vocabulary, of a label that spoils
        integer labels (see `build_label_vocabulary`); plus everything
        `read_classification_file` raises.
    """
    texts, pairs, labels, line_numbers = read_classification_file(
        path, text_column, pair_column, label_column, has_header
    )
    if label_vocabulary is None:
        problem = _integer_label_problem(labels)
        if problem:
            label, message = problem
            raise ValueError(f"{path}, line {line_numbers[labels.index(label)]}: {message}.")
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
