"""Entity-level precision, recall and F1 of tagged sentences, as conlleval and seqeval score them.

An entity counts as found only when its type, first word and last word all match. The chunks
come from conlleval's rules, which read IOB1, IOB2 and BIOES tags alike and also give
ill-formed sequences a reading (an `I-X` after `O` begins an entity, as in IOB1). The scores
equal `seqeval`'s default (non-strict) mode with `zero_division=0`.
"""

import re

_TAG = re.compile(r"([BIESLU])-(.+)")
# BILOU's L (last) and U (unit) are BIOES's E and S.
_BILOU = {"L": "E", "U": "S"}


def entities(tags):
    """The entities of one sentence's tags, by conlleval's chunk rules.

    A chunk ends before a tag that is `B-`, `S-` or `O` after `B-`/`I-`; after any `E-` or
    `S-`; and where the type changes. It begins at `B-` and `S-`; at `I-` or `E-` after `O`,
    `E-` or `S-`; and where the type changes. So `I-PER I-PER` is one entity (IOB1),
    `O I-PER E-PER` is one entity, and `B-PER I-LOC` is two. These are the rules of
    `seqeval.metrics.sequence_labeling.get_entities` (seqeval 1.2.2) without `suffix`; BILOU's
    `L-` and `U-` (which seqeval does not know) read as `E-` and `S-`.

    Args:
        tags: the sentence's tags: `"O"` or `PREFIX-TYPE`, PREFIX one of `B`, `I`, `E`, `S`
            (or `L`, `U`).

    Returns:
        A list of `(type, start, end)`: word indices, `end` exclusive, in sentence order.

    Raises:
        ValueError: a tag that is not `O` or `PREFIX-TYPE` (naming it and its position).

    Example:

    >>> entities(["B-PER", "I-PER", "O", "I-LOC", "B-LOC"])
    [('PER', 0, 2), ('LOC', 3, 4), ('LOC', 4, 5)]
    """
    chunks = []
    previous_prefix, previous_type, start = "O", "", 0
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, entity_type = _split(tag, i)
        if _chunk_ends(previous_prefix, prefix, previous_type, entity_type):
            chunks.append((previous_type, start, i))
        if _chunk_starts(previous_prefix, prefix, previous_type, entity_type):
            start = i
        previous_prefix, previous_type = prefix, entity_type
    return chunks


def _split(tag, position):
    if tag == "O":
        return "O", ""
    match = _TAG.fullmatch(tag) if isinstance(tag, str) else None
    if match is None:
        raise ValueError(
            f"The tag {tag!r} at position {position} is not O or PREFIX-TYPE (PREFIX one of B, I, E, S, L, U)."
        )
    prefix, entity_type = match.groups()
    return _BILOU.get(prefix, prefix), entity_type


def _chunk_ends(previous_prefix, prefix, previous_type, entity_type):
    """conlleval's endOfChunk (seqeval's `end_of_chunk`)."""
    return (
        previous_prefix in "ES"
        or (previous_prefix in "BI" and prefix in "BSO")
        or (previous_prefix != "O" and previous_type != entity_type)
    )


def _chunk_starts(previous_prefix, prefix, previous_type, entity_type):
    """conlleval's startOfChunk (seqeval's `start_of_chunk`)."""
    return (
        prefix in "BS"
        or (previous_prefix in "ESO" and prefix in "IE")
        or (prefix != "O" and previous_type != entity_type)
    )


def entity_scores(true_tags, predicted_tags):
    """Entity-level micro precision, recall and F1, and the same per entity type.

    An entity is correct when the prediction has one of the same type over the same words
    (`entities` reads both sides). Precision is correct / predicted entities, recall correct /
    true entities, F1 their harmonic mean; each is 0.0 where its denominator is 0 (seqeval's
    `zero_division=0`). The numbers equal seqeval's `precision_score`, `recall_score`,
    `f1_score` and `classification_report(..., output_dict=True)` in the default mode.

    Args:
        true_tags: the true tags, a list of sentences, each a list of tags.
        predicted_tags: the predicted tags, as many sentences, each as long as its true one.

    Returns:
        A dict: `precision`, `recall`, `f1` (floats in [0, 1], over all entities),
        `per_type` (`{type: {"precision", "recall", "f1", "support"}}` for each type among
        the true and the predicted entities, sorted; `support` counts the true entities),
        `true_entities` and `predicted_entities` (counts).

    Raises:
        ValueError: no sentences; the sentence counts differ; a sentence whose true and
            predicted tags differ in length, a sentence given as a string, or a tag that is
            not `O` or `PREFIX-TYPE` (naming the sentence's index).

    Example:

    >>> scores = entity_scores([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "O"]])
    >>> scores["precision"], scores["recall"], scores["f1"]
    (1.0, 0.5, 0.666...)
    """
    true_tags, predicted_tags = list(true_tags), list(predicted_tags)
    if len(true_tags) != len(predicted_tags):
        raise ValueError(
            f"{len(true_tags)} true sentences but {len(predicted_tags)} predicted sentences: they must pair up."
        )
    if not true_tags:
        raise ValueError("No sentences to score.")
    true_entities, predicted_entities = set(), set()
    for index, (true, predicted) in enumerate(zip(true_tags, predicted_tags)):
        if isinstance(true, str) or isinstance(predicted, str):
            raise ValueError(
                f"Sentence {index} is a string: pass lists of sentences, each a list of tags "
                "([['B-PER', 'I-PER', 'O'], ...])."
            )
        true, predicted = list(true), list(predicted)
        if len(true) != len(predicted):
            raise ValueError(
                f"Sentence {index} has {len(true)} true tags but {len(predicted)} predicted tags: they must pair up."
            )
        for found, sentence in ((true_entities, true), (predicted_entities, predicted)):
            try:
                found.update((entity_type, index, start, end) for entity_type, start, end in entities(sentence))
            except ValueError as error:
                raise ValueError(f"Sentence {index}: {error}") from None
    correct = true_entities & predicted_entities
    per_type = {}
    for entity_type in sorted({entity[0] for entity in true_entities | predicted_entities}):
        counts = [
            sum(entity[0] == entity_type for entity in found) for found in (correct, predicted_entities, true_entities)
        ]
        per_type[entity_type] = dict(zip(("precision", "recall", "f1"), _scores(*counts)), support=counts[2])
    precision, recall, f1 = _scores(len(correct), len(predicted_entities), len(true_entities))
    return dict(
        precision=precision,
        recall=recall,
        f1=f1,
        per_type=per_type,
        true_entities=len(true_entities),
        predicted_entities=len(predicted_entities),
    )


def _scores(correct, predicted, true):
    """`(precision, recall, f1)`, 0.0 where undefined; the same float operations as seqeval."""
    precision = correct / predicted if predicted else 0.0
    recall = correct / true if true else 0.0
    denominator = precision + recall
    f1 = 2.0 * precision * recall / denominator if denominator else 0.0
    return precision, recall, f1
