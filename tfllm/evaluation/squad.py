"""Exact match and F1 of extractive answers: the official SQuAD v1.1 evaluation, and Chinese.

The official script (`evaluate-v1.1.py`) normalizes each answer (lower case, no ASCII
punctuation, no articles `a`/`an`/`the`, single spaces), then scores a prediction against each
reference answer of its question and keeps the best: exact match (the normalized texts are
equal) and F1 over the bags of whitespace tokens. It reports percentages; these functions
give fractions in [0, 1].

Chinese has no spaces, so under the official rules every Chinese answer is one token and F1
is all or nothing. Here each CJK character is a token of its own (as CMRC 2018's evaluation
splits Chinese), and in a text holding a CJK character every Unicode punctuation mark
(`，`, `。`, `“`, ...) is removed, not only ASCII's. Text without CJK characters scores
exactly as the official script scores it.
"""

import collections
import re
import string
import unicodedata

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# The CJK ideographs tfllm.evaluation.rouge's tokenize="zh" makes tokens of.
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")


def normalize_answer(text):
    """An answer as the official SQuAD v1.1 script compares it.

    The script's steps, in its order: lower case; remove ASCII punctuation
    (`string.punctuation`); replace the words `a`, `an` and `the` by a space; collapse runs of
    whitespace to one space and strip the ends. In a text holding a CJK character, the second
    step removes every Unicode punctuation character (category P*) too.

    Example:

    >>> normalize_answer("  The Denver   Broncos!")
    'denver broncos'
    """
    text = text.lower()
    cjk = _CJK.search(text) is not None
    text = "".join(
        char
        for char in text
        if char not in _PUNCTUATION and not (cjk and unicodedata.category(char).startswith("P"))
    )
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def answer_tokens(text):
    """The tokens exact match and F1 compare: the normalized text split at whitespace, each
    CJK character a token of its own (`"2018年 冬奥会"` -> `["2018", "年", "冬", "奥", "会"]`)."""
    return _CJK.sub(r" \g<0> ", normalize_answer(text)).split()


def exact_match(prediction, references):
    """1.0 if the prediction equals a reference after `normalize_answer`, else 0.0.

    Args:
        prediction: the predicted answer text.
        references: the reference answers (a list of strings, or one string).

    Returns:
        The best over the references: 1.0 or 0.0. (For CJK text the token lists of
        `answer_tokens` are compared, so spaces between CJK characters do not count.)

    Raises:
        ValueError: no references.
    """
    tokens = answer_tokens(_text(prediction, "prediction"))
    return max(float(tokens == answer_tokens(reference)) for reference in _references(references))


def f1(prediction, references):
    """The official token-overlap F1 against the best reference.

    Against one reference: the common tokens (`answer_tokens`, counted as bags) over the
    prediction's tokens is the precision, over the reference's the recall, F1 their harmonic
    mean; 0.0 when no token is common (so an empty prediction scores 0.0, and so does a
    prediction and reference that normalize to nothing, though their exact match is 1.0, as
    in the official script).

    Args:
        prediction: the predicted answer text.
        references: the reference answers (a list of strings, or one string).

    Returns:
        The best F1 over the references, in [0, 1].

    Raises:
        ValueError: no references.
    """
    predicted = answer_tokens(_text(prediction, "prediction"))
    return max(_token_f1(predicted, answer_tokens(reference)) for reference in _references(references))


def _token_f1(predicted, reference):
    common = sum((collections.Counter(predicted) & collections.Counter(reference)).values())
    if common == 0:
        return 0.0
    precision = 1.0 * common / len(predicted)
    recall = 1.0 * common / len(reference)
    return (2 * precision * recall) / (precision + recall)


def squad_scores(predictions, references):
    """Mean exact match and F1 over questions, as the official SQuAD v1.1 evaluation computes them.

    Args:
        predictions: either a list of predicted answer texts, or a dict `{question id: text}`.
        references: with a list of predictions, as many questions in the same order: each a
            list of reference answer texts (or one string, or a `QAExample`). With a dict,
            a list of `QAExample` (`tfllm.data.read_squad`): every example's id must have a
            prediction; predictions for other ids are ignored, as the official script ignores
            them.

    Returns:
        `{"exact_match", "f1", "count"}`: the means over the questions as fractions in
        [0, 1] (the official script prints these times 100), and the number of questions.

    Raises:
        ValueError: no questions; the counts differ; an example's id has no prediction; a
            question has no reference answer (`read_squad` leaves a question whose answers
            all mismatched its context with none: leave such examples out); a prediction that
            is not a string.

    Example:

    >>> squad_scores(["Denver Broncos", "the Panthers"], [["Denver Broncos"], ["Carolina Panthers"]])
    {'exact_match': 0.5, 'f1': 0.833..., 'count': 2}
    """
    if isinstance(predictions, dict):
        pairs = []
        for index, example in enumerate(references):
            if not hasattr(example, "id"):
                raise ValueError(
                    "With predictions as a dict of id -> text, `references` must be QAExamples "
                    f"(tfllm.data.read_squad); item {index} is {type(example).__name__}."
                )
            if example.id not in predictions:
                raise ValueError(f"No prediction for question {example.id!r} (example {index}).")
            pairs.append((f"question {example.id!r}", predictions[example.id], example.answers))
    else:
        predictions, references = list(predictions), list(references)
        if len(predictions) != len(references):
            raise ValueError(
                f"{len(predictions)} predictions but {len(references)} reference lists: they must pair up."
            )
        pairs = [
            (f"question {index}", prediction, getattr(reference, "answers", reference))
            for index, (prediction, reference) in enumerate(zip(predictions, references))
        ]
    if not pairs:
        raise ValueError("No questions to score.")
    exact_total = f1_total = 0.0
    for name, prediction, answers in pairs:
        if not isinstance(prediction, str):
            raise ValueError(f"The prediction for {name} is {type(prediction).__name__}, not a string.")
        if isinstance(answers, str):
            answers = [answers]
        if not answers:
            raise ValueError(
                f"{name.capitalize()} has no reference answer to score against (read_squad keeps a question whose "
                "answers all mismatched its context, with none: leave it out, e.g. [e for e in examples if e.answers])."
            )
        exact_total += exact_match(prediction, answers)
        f1_total += f1(prediction, answers)
    return {"exact_match": exact_total / len(pairs), "f1": f1_total / len(pairs), "count": len(pairs)}


def _text(value, what):
    if not isinstance(value, str):
        raise ValueError(f"The {what} must be a string. Received: {value!r}")
    return value


def _references(references):
    references = [references] if isinstance(references, str) else list(references)
    if not references:
        raise ValueError("No reference answers to score against.")
    for reference in references:
        _text(reference, "reference answer")
    return references
