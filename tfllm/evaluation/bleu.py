"""Corpus BLEU, computed as sacrebleu computes it with its defaults.

Papineni et al. (2002): the geometric mean of the modified n-gram precisions (n = 1..4, each
hypothesis n-gram counted at most as often as in the reference that holds it most often) times
a brevity penalty `exp(1 - r / c)` when the hypotheses are shorter than the references (`r`: for
each hypothesis the length of the closest reference, the shorter on ties). Precisions of zero
are smoothed as mteval-v13a does (sacrebleu's default `exp`): the k-th zero precision becomes
`1 / (2^k * total)`. Text is tokenized first:

- `"13a"` (the default, WMT's mteval-v13a): punctuation and symbols split from words, a period
  or comma split off unless between digits, a dash split off after a digit;
- `"zh"`: every Chinese character (the same Unicode ranges as sacrebleu) a token of its own,
  then `13a` on the rest;
- `"none"`: whitespace only.

Case is kept. The score is 0 to 100.
"""

import collections
import math
import re

TOKENIZERS = ("13a", "zh", "none")
MAX_ORDER = 4

_REGEXP_RULES = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
]

# The Unicode ranges sacrebleu's `zh` tokenizer treats as Chinese characters, compared as Python
# strings as it does (so a bound written with five hex digits, such as "\u20000", is the
# two-character string "\u2000" + "0": the range it spans is the one sacrebleu uses).
_CHINESE_RANGES = [
    ("\u3400", "\u4db5"), ("\u4e00", "\u9fa5"), ("\u9fa6", "\u9fbb"), ("\uf900", "\ufa2d"),
    ("\ufa30", "\ufa6a"), ("\ufa70", "\ufad9"), ("\u20000", "\u2a6d6"), ("\u2f800", "\u2fa1d"),
    ("\uff00", "\uffef"), ("\u2e80", "\u2eff"), ("\u3000", "\u303f"), ("\u31c0", "\u31ef"),
    ("\u2f00", "\u2fdf"), ("\u2ff0", "\u2fff"), ("\u3100", "\u312f"), ("\u31a0", "\u31bf"),
    ("\ufe10", "\ufe1f"), ("\ufe30", "\ufe4f"), ("\u2600", "\u26ff"), ("\u2700", "\u27bf"),
    ("\u3200", "\u32ff"), ("\u3300", "\u33ff"),
]  # fmt: skip


def bleu_tokens(line, tokenizer="13a"):
    """`line` as BLEU's tokens (a list of strings), by `tokenizer` (`"13a"`, `"zh"`, `"none"`)."""
    line = line.rstrip()
    if tokenizer == "none":
        return line.split()
    if tokenizer == "13a":
        line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
        if "&" in line:
            line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
        line = f" {line} "
    elif tokenizer == "zh":
        line = "".join(f" {char} " if _is_chinese(char) else char for char in line.strip())
    else:
        raise ValueError(f"`tokenize` must be one of {TOKENIZERS}. Received: tokenize={tokenizer!r}")
    for pattern, replacement in _REGEXP_RULES:
        line = pattern.sub(replacement, line)
    return line.split()


def _is_chinese(char):
    return any(start <= char <= end for start, end in _CHINESE_RANGES)


def _ngrams(tokens):
    counts = collections.Counter()
    for n in range(1, MAX_ORDER + 1):
        for i in range(len(tokens) - n + 1):
            counts[tuple(tokens[i : i + n])] += 1
    return counts


def corpus_bleu(hypotheses, references, tokenize="13a"):
    """Corpus BLEU of `hypotheses` against one or more reference streams.

    Args:
        hypotheses: a list of strings, one per segment.
        references: a list of strings (one reference per hypothesis), or a list of such lists
            (several references per hypothesis, one list per reference stream).
        tokenize: `"13a"`, `"zh"` or `"none"` (see the module docstring).

    Returns:
        A dict: `bleu` (0-100), `precisions` (the four n-gram precisions, 0-100),
        `brevity_penalty`, `ratio` (hypothesis length / reference length), `hypothesis_length`,
        `reference_length`, `tokenize`.

    Raises:
        ValueError: no hypotheses, a reference stream of another length, an empty reference
            (a segment whose every reference is empty), an unknown tokenizer.

    Example:

    >>> corpus_bleu(["the cat sat on the mat"], ["the cat sat on the mat"])["bleu"]
    100.0
    """
    hypotheses = _strings("hypotheses", hypotheses)
    if not hypotheses:
        raise ValueError("`hypotheses` is empty: BLEU needs at least one segment.")
    streams = [references] if references and isinstance(references[0], str) else list(references)
    streams = [_strings("references", stream) for stream in streams]
    if not streams:
        raise ValueError("`references` is empty.")
    for stream in streams:
        if len(stream) != len(hypotheses):
            raise ValueError(
                f"{len(hypotheses)} hypotheses but {len(stream)} references: every hypothesis needs its reference."
            )
    if tokenize not in TOKENIZERS:
        raise ValueError(f"`tokenize` must be one of {TOKENIZERS}. Received: tokenize={tokenize!r}")

    correct, total = [0] * MAX_ORDER, [0] * MAX_ORDER
    hypothesis_length = reference_length = 0
    for index, hypothesis in enumerate(hypotheses):
        references_tokens = [bleu_tokens(stream[index], tokenize) for stream in streams]
        if not any(references_tokens):
            raise ValueError(f"The reference of segment {index + 1} is empty.")
        tokens = bleu_tokens(hypothesis, tokenize)
        counts = _ngrams(tokens)
        best = collections.Counter()
        for reference in references_tokens:
            best |= _ngrams(reference)
        lengths = [len(reference) for reference in references_tokens]
        # The closest reference length, the shorter on ties.
        reference_length += min(lengths, key=lambda length: (abs(length - len(tokens)), length))
        hypothesis_length += len(tokens)
        for ngram, count in counts.items():
            total[len(ngram) - 1] += count
            correct[len(ngram) - 1] += min(count, best[ngram])

    brevity_penalty = 1.0
    if hypothesis_length < reference_length:
        brevity_penalty = math.exp(1 - reference_length / hypothesis_length) if hypothesis_length else 0.0
    precisions = [0.0] * MAX_ORDER
    if any(correct):
        doubling = 1.0
        for n in range(MAX_ORDER):
            if total[n] == 0:
                break
            if correct[n] == 0:
                doubling *= 2
                precisions[n] = 100.0 / (doubling * total[n])
            else:
                precisions[n] = 100.0 * correct[n] / total[n]
        logs = [math.log(p) if p > 0 else -9999999999 for p in precisions]
        bleu = brevity_penalty * math.exp(sum(logs) / MAX_ORDER)
    else:
        bleu = 0.0
    return dict(
        bleu=bleu,
        precisions=precisions,
        brevity_penalty=brevity_penalty,
        ratio=hypothesis_length / reference_length if reference_length else 0.0,
        hypothesis_length=hypothesis_length,
        reference_length=reference_length,
        tokenize=tokenize,
    )


def _strings(name, values):
    values = list(values)
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise ValueError(f"`{name}` must hold strings; item {index + 1} is {type(value).__name__}: {value!r}")
    return values
