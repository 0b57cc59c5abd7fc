"""ROUGE-1, ROUGE-2 and ROUGE-L, computed as Google's `rouge-score` computes them (no stemming).

Lin (2004). Each line's hypothesis is scored against its reference: ROUGE-N counts the
n-grams they share (each at most as often as in either), ROUGE-L takes their longest common
subsequence; precision is over the hypothesis, recall over the reference, and the F-measure
`2PR / (P + R)` (0 when both are 0) is averaged over the lines.

Tokens (`tokenize="default"`, rouge-score's own): the text lower-cased, every run of
characters outside `[a-z0-9]` a separator. That drops every other script, so Chinese text
scores nothing that way; `tokenize="zh"` makes each CJK character a token too (and otherwise
tokenizes the same), which rouge-score does not offer.
"""

import collections
import re

TOKENIZERS = ("default", "zh")
_SEPARATOR = re.compile(r"[^a-z0-9]+")
_CJK_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
_CJK = re.compile(f"[{_CJK_RANGES}]")
_SEPARATOR_ZH = re.compile(f"[^a-z0-9{_CJK_RANGES}]+")


def rouge_tokens(text, tokenize="default"):
    """The tokens ROUGE compares: see the module docstring."""
    text = text.lower()
    if tokenize == "default":
        return [token for token in _SEPARATOR.split(text) if token]
    if tokenize == "zh":
        return [token for token in _SEPARATOR_ZH.split(_CJK.sub(r" \g<0> ", text)) if token]
    raise ValueError(f"`tokenize` must be one of {TOKENIZERS}. Received: tokenize={tokenize!r}")


def _ngram_f(reference, hypothesis, n):
    def counts(tokens):
        return collections.Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))

    ref, hyp = counts(reference), counts(hypothesis)
    overlap = sum(min(count, hyp[gram]) for gram, count in ref.items())
    return _f(overlap / max(sum(hyp.values()), 1), overlap / max(sum(ref.values()), 1))


def _lcs_f(reference, hypothesis):
    if not reference or not hypothesis:
        return 0.0
    previous = [0] * (len(hypothesis) + 1)
    for token in reference:
        current = [0]
        for j, other in enumerate(hypothesis):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    return _f(lcs / len(hypothesis), lcs / len(reference))


def _f(precision, recall):
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def rouge(hypotheses, references, tokenize="default"):
    """ROUGE-1, ROUGE-2 and ROUGE-L F-measures averaged over the lines.

    Args:
        hypotheses: a list of strings.
        references: a list of strings, one per hypothesis.
        tokenize: `"default"` (rouge-score's) or `"zh"` (CJK characters as tokens).

    Returns:
        `{"rouge1": ..., "rouge2": ..., "rougeL": ...}`, each in [0, 1].

    Raises:
        ValueError: no lines, a different number of hypotheses and references, an empty
            reference, a non-string.

    Example:

    >>> rouge(["the cat sat"], ["the cat sat down"])["rouge1"]
    0.857...
    """
    hypotheses, references = list(hypotheses), list(references)
    if not hypotheses:
        raise ValueError("`hypotheses` is empty: ROUGE needs at least one line.")
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} references: every hypothesis needs its reference."
        )
    totals = dict(rouge1=0.0, rouge2=0.0, rougeL=0.0)
    for index, (hypothesis, reference) in enumerate(zip(hypotheses, references)):
        for name, value in (("hypotheses", hypothesis), ("references", reference)):
            if not isinstance(value, str):
                raise ValueError(f"`{name}` must hold strings; line {index + 1} is {type(value).__name__}: {value!r}")
        if not reference.strip():
            raise ValueError(f"The reference of line {index + 1} is empty.")
        ref, hyp = rouge_tokens(reference, tokenize), rouge_tokens(hypothesis, tokenize)
        totals["rouge1"] += _ngram_f(ref, hyp, 1)
        totals["rouge2"] += _ngram_f(ref, hyp, 2)
        totals["rougeL"] += _lcs_f(ref, hyp)
    return {name: total / len(hypotheses) for name, total in totals.items()}
