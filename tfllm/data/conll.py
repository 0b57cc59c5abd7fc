"""Token-tagging and extractive question-answering data: CoNLL-style files and SQuAD JSON.

- `read_conll(path, scheme="auto")`: one token a line, the tag last, sentences between blank
  lines (CoNLL-2003, Weibo NER, ...); tags come back as IOB2 whatever the file's scheme.
- `read_squad(path, on_mismatch="skip")`: SQuAD v1.1 JSON, one `QAExample` per question.
"""

import dataclasses
import json
import re
import warnings

from tfllm.data._files import check_files

SCHEMES = ("IOB1", "IOB2", "BIOES")

_BYTE_ORDER_MARK = "\ufeff"
_COLUMN_SEPARATOR = re.compile(r"[ \t]+")
_TAG = re.compile(r"([BIESLU])-(.+)")
_LINE_END = re.compile(rb"\r\n|\r|\n")
# BILOU's L (last) and U (unit) are BIOES's E and S.
_BILOU = {"L": "E", "U": "S"}
_DOCSTART = "-DOCSTART-"


@dataclasses.dataclass
class TaggedSentences:
    """What `read_conll` read: sentences of tokens and their IOB2 tags.

    Attributes:
        words: one list of tokens per sentence.
        tags: one list of tags per sentence, as long as its tokens; always IOB2 (`O`, `B-TYPE`,
            `I-TYPE`), whatever scheme the file was written in.
        line_numbers: the line (1-based) of each sentence's first token.
        path: the file read.
        scheme: the file's scheme, detected or given: `"IOB1"`, `"IOB2"` or `"BIOES"` (BILOU
            files read as `"BIOES"`).
    """

    words: list
    tags: list
    line_numbers: list
    path: str
    scheme: str

    def __len__(self):
        return len(self.words)

    @property
    def entity_types(self):
        """The entity types the tags name, sorted (`["LOC", "MISC", "ORG", "PER"]`)."""
        return sorted({tag[2:] for sentence in self.tags for tag in sentence if tag != "O"})

    def label_vocabulary(self):
        """The IOB2 labels of a tagger over these types: `["O", "B-T1", "I-T1", "B-T2", ...]`.

        The types come in sorted order, so the vocabulary is the same for every file holding
        the same types (read it from the training file and keep it with the model).
        """
        labels = ["O"]
        for entity_type in self.entity_types:
            labels += [f"B-{entity_type}", f"I-{entity_type}"]
        return labels


def read_conll(path, scheme="auto", encoding="utf-8"):
    """Reads a CoNLL-style tagged file: one token a line, the tag last, blank lines between sentences.

    Columns are separated by spaces or tabs; a line may have any number of them, at least two:
    the token is the first column and the tag the last (CoNLL-2003's `word POS chunk tag` and
    `word POS tag`, Weibo NER's `char tag`). A blank (or whitespace-only) line ends a sentence;
    several in a row are one break, and the last sentence needs none after it. A `-DOCSTART-`
    line (first column `-DOCSTART-`) is a document break: it is skipped, and so is the blank
    line after it. A leading byte-order mark (U+FEFF) is dropped.

    A tag is `O` or `PREFIX-TYPE`: PREFIX is `B`, `I`, `E` or `S` (BIOES; BILOU's `L` and `U`
    read as `E` and `S`), and TYPE is any non-empty text (`PER`, `PER.NAM`, `GPE-NOM`).

    `scheme="auto"` detects the scheme from the whole file: BIOES if any tag is `E-`, `S-`,
    `L-` or `U-`; else IOB1 if some entity begins with `I-` (an `I-X` first in its sentence,
    after `O`, or after a tag of another type); else IOB2. The tags are converted to IOB2:
    in IOB1 an `I-X` that begins an entity becomes `B-X`; in BIOES `S-X` becomes `B-X` and
    `E-X` becomes `I-X`.

    Args:
        path: the file.
        scheme: `"auto"`, or the scheme the file is written in: `"IOB1"`, `"IOB2"` or
            `"BIOES"`. A file that breaks its stated scheme is an error: with `"IOB2"`, an
            entity that begins with `I-`; with `"IOB1"` or `"IOB2"`, any `E-`/`S-`/`L-`/`U-`
            tag.
        encoding: the file's text encoding.

    Returns:
        A `TaggedSentences` (`words`, IOB2 `tags`, `line_numbers`, `path`, `scheme`).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is empty or holds no sentence (naming the file); or, naming the
            file and line as `path:line: ...`: a byte the encoding cannot decode, a line with
            one column, a tag that is not `O` or `PREFIX-TYPE`, a tag of another scheme than
            the one given, and in BIOES a transition no BIOES sequence has (`I-X` or `E-X`
            not after `B-X`/`I-X`, an entity not closed by `E-` before `O`, `B-`, `S-`, a
            tag of another type or the end of the sentence).
    """
    if scheme not in ("auto",) + SCHEMES:
        raise ValueError(f"`scheme` must be 'auto' or one of {SCHEMES}. Received: scheme={scheme!r}")
    (path,) = check_files(path)
    lines = _decoded_lines(path, encoding)
    sentences = []  # (words, tags, tag line numbers)
    words, tags, numbers = [], [], []
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            if words:
                sentences.append((words, tags, numbers))
                words, tags, numbers = [], [], []
            continue
        columns = _COLUMN_SEPARATOR.split(line.strip(" \t\f\v"))
        if columns[0] == _DOCSTART:
            if words:
                sentences.append((words, tags, numbers))
                words, tags, numbers = [], [], []
            continue
        if len(columns) < 2:
            raise ValueError(
                f"{path}:{line_number}: one column ({line.strip()!r}): expected at least 2 columns, the token "
                "first and the tag last, separated by spaces or tabs."
            )
        tag = columns[-1]
        if tag != "O" and not _TAG.fullmatch(tag):
            raise ValueError(
                f"{path}:{line_number}: the tag {tag!r} is not O or PREFIX-TYPE (PREFIX one of B, I, E, S, L, U); "
                "the tag must be the last column."
            )
        words.append(columns[0])
        tags.append(tag)
        numbers.append(line_number)
    if words:
        sentences.append((words, tags, numbers))
    if not sentences:
        raise ValueError(f"{path} holds no sentences (only blank and -DOCSTART- lines).")

    if scheme == "auto":
        scheme = _detect_scheme(sentences)
    convert = _from_bioes if scheme == "BIOES" else _from_iob
    result = TaggedSentences([], [], [], path, scheme)
    for words, tags, numbers in sentences:
        result.words.append(words)
        result.tags.append(convert(path, scheme, tags, numbers))
        result.line_numbers.append(numbers[0])
    return result


def _decoded_lines(path, encoding):
    """The file's lines (any line end), without a leading byte-order mark."""
    with open(path, "rb") as file:
        data = file.read()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        line_number = len(_LINE_END.findall(data[: error.start])) + 1
        raise ValueError(
            f"{path}:{line_number}: the byte {data[error.start]:#04x} is not {encoding} ({error.reason}); "
            f"pass the file's encoding as encoding=."
        ) from None
    text = text.removeprefix(_BYTE_ORDER_MARK)
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _split(tag):
    """`(prefix, type)` of a tag; `("O", None)` for O. BILOU prefixes come back as BIOES's."""
    if tag == "O":
        return "O", None
    prefix, entity_type = tag[0], tag[2:]
    return _BILOU.get(prefix, prefix), entity_type


def _detect_scheme(sentences):
    iob1 = False
    for _, tags, _ in sentences:
        previous = None  # the type of the previous tag, None after O and at the start
        for tag in tags:
            prefix, entity_type = _split(tag)
            if prefix in "ES":
                return "BIOES"
            if prefix == "I" and entity_type != previous:
                iob1 = True
            previous = entity_type
    return "IOB1" if iob1 else "IOB2"


def _from_iob(path, scheme, tags, numbers):
    """IOB1 / IOB2 tags as IOB2; a ValueError where they break `scheme`."""
    converted = []
    previous = None
    for tag, line_number in zip(tags, numbers):
        prefix, entity_type = _split(tag)
        if prefix in "ES":
            raise ValueError(
                f"{path}:{line_number}: the tag {tag!r} is BIOES (or BILOU), in a file read as {scheme}; pass "
                "scheme='BIOES' or scheme='auto'."
            )
        if prefix == "I" and entity_type != previous:
            if scheme == "IOB2":
                after = "first in its sentence" if not converted else f"after {converted[-1]}"
                raise ValueError(
                    f"{path}:{line_number}: {tag} {after}: in IOB2 an entity begins with B-{entity_type}; the file "
                    "is not IOB2 (pass scheme='IOB1' or scheme='auto' to read an I- that begins an entity as B-)."
                )
            tag = f"B-{entity_type}"
        converted.append(tag)
        previous = entity_type
    return converted


def _from_bioes(path, scheme, tags, numbers):
    """BIOES (or BILOU) tags as IOB2; a ValueError at a transition BIOES does not have."""
    converted = []
    open_entity = None  # (type, line of its B-) of the entity not yet closed by E-
    for tag, line_number in zip(tags, numbers):
        prefix, entity_type = _split(tag)
        if open_entity is not None:
            open_type, open_line = open_entity
            if prefix not in "IE" or entity_type != open_type:
                raise ValueError(
                    f"{path}:{line_number}: {tag} after {tags[len(converted) - 1]}: in BIOES the {open_type} entity "
                    f"begun at line {open_line} must end with E-{open_type} before another tag."
                )
        elif prefix in "IE":
            after = "first in its sentence" if not converted else f"after {tags[len(converted) - 1]}"
            raise ValueError(
                f"{path}:{line_number}: {tag} {after}: in BIOES {tag} continues an entity begun by B-{entity_type}."
            )
        if prefix == "B":
            open_entity = (entity_type, line_number)
        elif prefix == "E":
            open_entity = None
        converted.append("O" if prefix == "O" else f"{'B' if prefix in 'BS' else 'I'}-{entity_type}")
    if open_entity is not None:
        open_type, open_line = open_entity
        raise ValueError(
            f"{path}:{numbers[-1]}: the sentence ends inside the {open_type} entity begun at line {open_line}: in "
            f"BIOES it must end with E-{open_type}."
        )
    return converted


@dataclasses.dataclass
class QAExample:
    """One SQuAD question, as `read_squad` read it.

    Attributes:
        id: the question's id (the key of its prediction).
        question: the question.
        context: the paragraph holding the answer.
        answers: the answer texts, in file order, duplicates kept (the references the scores
            take the best of). Empty when the file gives none, or when every answer was
            dropped for not matching the context.
        answer_starts: each answer's character offset in `context`, as many as `answers`.
        title: the article's title.
    """

    id: str
    question: str
    context: str
    answers: list
    answer_starts: list
    title: str


def read_squad(path, on_mismatch="skip"):
    """Reads a SQuAD v1.1 JSON file: one `QAExample` per question.

    The file is `{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question",
    "answers": [{"text", "answer_start"}]}]}]}]}`; other keys (`version`, SQuAD 2.0's
    `is_impossible`, ...) are ignored, and an article without a `title` gets `""`. Every
    answer is checked against its context: `context[answer_start:answer_start + len(text)]`
    must be `text`, exactly.

    Args:
        path: the JSON file (UTF-8).
        on_mismatch: what to do with an answer that does not match its context: `"skip"`
            drops it from `answers` and `answer_starts`, and one warning at the end says how
            many answers were dropped, in how many questions, and names the first three
            question ids (a question left with no answer stays, with empty lists: it can be
            predicted and scored against nothing, and training pipelines skip it);
            `"error"` raises a ValueError.

    Returns:
        A list of `QAExample`, in file order.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError, naming the file: the file is empty, not UTF-8 or not valid JSON (with the
            line and column); a key is missing or a value has the wrong type (with where in
            the JSON, such as `data[3].paragraphs[1].qas[0]: no "question"`); two questions
            share an id; the file holds no question; or, with `on_mismatch="error"`, answers
            that do not match their context (how many, and the first three question ids with
            the text expected and the text found).
    """
    if on_mismatch not in ("skip", "error"):
        raise ValueError(f"`on_mismatch` must be 'skip' or 'error'. Received: on_mismatch={on_mismatch!r}")
    (path,) = check_files(path)
    with open(path, "rb") as file:
        data = file.read()
    try:
        text = data.decode("utf-8").removeprefix(_BYTE_ORDER_MARK)
    except UnicodeDecodeError as error:
        line_number = len(_LINE_END.findall(data[: error.start])) + 1
        raise ValueError(f"{path}:{line_number}: the byte {data[error.start]:#04x} is not UTF-8.") from None
    try:
        root = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path}:{error.lineno}: not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})."
        ) from None

    reader = _JSONReader(path)
    examples = []
    mismatches = []  # (question id, expected, found)
    mismatched_questions = set()
    ids = {}
    articles = reader.get(reader.check(root, "", dict), "", "data", list)
    for i, article in enumerate(articles):
        where = f"data[{i}]"
        reader.check(article, where, dict)
        title = reader.get(article, where, "title", str, default="")
        for j, paragraph in enumerate(reader.get(article, where, "paragraphs", list)):
            where = f"data[{i}].paragraphs[{j}]"
            reader.check(paragraph, where, dict)
            context = reader.get(paragraph, where, "context", str)
            for k, qa in enumerate(reader.get(paragraph, where, "qas", list)):
                where = f"data[{i}].paragraphs[{j}].qas[{k}]"
                reader.check(qa, where, dict)
                question_id = reader.get(qa, where, "id", (str, int))
                question_id = str(question_id)
                if question_id in ids:
                    raise ValueError(f"{path}: {where}: the id {question_id!r} is also the id of {ids[question_id]}.")
                ids[question_id] = where
                question = reader.get(qa, where, "question", str)
                answers, starts = [], []
                for m, answer in enumerate(reader.get(qa, where, "answers", list)):
                    answer_where = f"{where}.answers[{m}]"
                    reader.check(answer, answer_where, dict)
                    answer_text = reader.get(answer, answer_where, "text", str)
                    start = reader.get(answer, answer_where, "answer_start", int)
                    found = context[start : start + len(answer_text)] if start >= 0 else ""
                    if found != answer_text:
                        mismatches.append((question_id, answer_text, found, start))
                        mismatched_questions.add(question_id)
                        continue
                    answers.append(answer_text)
                    starts.append(start)
                examples.append(QAExample(question_id, question, context, answers, starts, title))
    if not examples:
        raise ValueError(f"{path} holds no questions.")
    if mismatches:
        first = list(dict.fromkeys(question_id for question_id, *_ in mismatches))[:3]
        counts = (
            f"{len(mismatches)} answer{'s' if len(mismatches) != 1 else ''} in {len(mismatched_questions)} "
            f"question{'s' if len(mismatched_questions) != 1 else ''}"
        )
        if on_mismatch == "error":
            details = "; ".join(
                f"{question_id}: expected {expected!r} at {start}, found {found!r}"
                for question_id, expected, found, start in _first_per_question(mismatches, first)
            )
            raise ValueError(
                f"{path}: {counts} do not match the context at their answer_start (first: {details}); pass "
                "on_mismatch='skip' to drop them."
            )
        warnings.warn(
            f"{path}: dropped {counts} that do not match the context at their answer_start (first question ids: "
            f"{', '.join(first)}).",
            stacklevel=2,
        )
    return examples


def _first_per_question(mismatches, question_ids):
    """The first mismatch of each of `question_ids`."""
    firsts = {}
    for mismatch in mismatches:
        firsts.setdefault(mismatch[0], mismatch)
    return [firsts[question_id] for question_id in question_ids]


class _JSONReader:
    """Typed access to a parsed JSON file; every error names the file and the place in it."""

    _TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer"}

    def __init__(self, path):
        self.path = path

    def fail(self, where, what):
        raise ValueError(f"{self.path}: {where or 'the top level'}: {what}.")

    def check(self, value, where, types):
        types = types if isinstance(types, tuple) else (types,)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            wanted = " or ".join(self._TYPE_NAMES[t] for t in types)
            self.fail(where, f"expected {wanted}, found {_json_type(value)}")
        return value

    def get(self, parent, where, key, types, default=None):
        if key not in parent:
            if default is not None:
                return default
            self.fail(where, f'no "{key}"')
        return self.check(parent[key], f"{where}.{key}" if where else key, types)


def _json_type(value):
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer"}.get(
        type(value), "a number"
    )
