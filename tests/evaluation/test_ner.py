"""entities / entity_scores against seqeval 1.2.2 (conlleval's rules, default mode)."""

import random
import warnings

import pytest

from tests.data_files import shared_data
from tfllm.data import read_conll
from tfllm.evaluation import entities, entity_scores

seqeval = pytest.importorskip("seqeval.metrics")
from seqeval.metrics.sequence_labeling import get_entities  # noqa: E402

TYPES = ["LOC", "PER", "ORG.NAM"]
TAGS = ["O"] + [f"{prefix}-{entity_type}" for prefix in "BIES" for entity_type in TYPES]


def random_tags(rng, length):
    """A random mix of O and B-/I-/E-/S- tags of three types: mostly ill-formed sequences."""
    return [("O" if rng.random() < 0.4 else rng.choice(TAGS)) for _ in range(length)]


def seqeval_scores(true, predicted):
    with warnings.catch_warnings():  # its macro average over no type at all is a mean of nothing
        warnings.simplefilter("ignore", RuntimeWarning)
        report = seqeval.classification_report(true, predicted, output_dict=True, zero_division=0)
    per_type = {
        name: {"precision": row["precision"], "recall": row["recall"], "f1": row["f1-score"], "support": row["support"]}
        for name, row in report.items()
        if not name.endswith(" avg")
    }
    return dict(
        precision=seqeval.precision_score(true, predicted, zero_division=0),
        recall=seqeval.recall_score(true, predicted, zero_division=0),
        f1=seqeval.f1_score(true, predicted, zero_division=0),
        per_type=per_type,
    )


def assert_equal_to_seqeval(true, predicted):
    ours = entity_scores(true, predicted)
    theirs = seqeval_scores(true, predicted)
    for name in ("precision", "recall", "f1"):
        assert ours[name] == theirs[name], name  # the same float operations: equal to the last bit
        assert isinstance(ours[name], float)
    assert ours["per_type"].keys() == theirs["per_type"].keys()
    for entity_type, row in theirs["per_type"].items():
        for name, value in row.items():
            assert ours["per_type"][entity_type][name] == value, (entity_type, name)
    assert ours["true_entities"] == len(get_entities(true))
    assert ours["predicted_entities"] == len(get_entities(predicted))
    return ours


def test_entities_examples():
    assert entities(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 2), ("LOC", 3, 4)]
    assert entities(["I-PER", "I-PER", "B-PER", "I-LOC"]) == [("PER", 0, 2), ("PER", 2, 3), ("LOC", 3, 4)]
    assert entities(["S-PER", "B-LOC", "I-LOC", "E-LOC", "E-LOC"]) == [("PER", 0, 1), ("LOC", 1, 4), ("LOC", 4, 5)]
    assert entities(["O", "E-PER", "I-PER", "B-PER.NAM"]) == [("PER", 1, 2), ("PER", 2, 3), ("PER.NAM", 3, 4)]
    assert entities(["U-PER", "B-LOC", "L-LOC"]) == entities(["S-PER", "B-LOC", "E-LOC"])
    assert entities([]) == []
    assert entities(["O", "O"]) == []


def test_entities_equal_seqeval_get_entities_on_random_tags():
    rng = random.Random(0)
    for _ in range(3000):
        tags = random_tags(rng, rng.randint(0, 12))
        assert entities(tags) == [(t, start, end + 1) for t, start, end in get_entities(tags)], tags


def test_scores_equal_seqeval_on_random_tags():
    rng = random.Random(1)
    for trial in range(400):
        lengths = [rng.randint(0, 10) for _ in range(rng.randint(1, 6))]
        true = [random_tags(rng, n) for n in lengths]
        if trial % 2:  # predictions near the truth, so that some entities match
            predicted = [[rng.choice(TAGS) if rng.random() < 0.2 else tag for tag in sentence] for sentence in true]
        else:
            predicted = [random_tags(rng, n) for n in lengths]
        assert_equal_to_seqeval(true, predicted)


def test_hand_computed_scores_and_undefined_ones():
    true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    predicted = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    scores = assert_equal_to_seqeval(true, predicted)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["true_entities"] == scores["predicted_entities"] == 3
    assert scores["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert scores["per_type"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    # Nothing predicted, nothing true: 0.0 rather than an error.
    none = entity_scores([["O", "O"]], [["O", "O"]])
    assert (none["precision"], none["recall"], none["f1"], none["per_type"]) == (0.0, 0.0, 0.0, {})
    only_predicted = assert_equal_to_seqeval([["O"]], [["B-PER"]])
    assert only_predicted["per_type"] == {"PER": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}}


def test_entities_do_not_cross_sentences():
    # "I-PER" first in the second sentence begins a new entity.
    scores = entity_scores([["B-PER"], ["I-PER"]], [["B-PER"], ["I-PER"]])
    assert scores["true_entities"] == 2


def test_bad_input_names_the_sentence():
    with pytest.raises(ValueError, match="2 true sentences but 1 predicted sentences"):
        entity_scores([["O"], ["O"]], [["O"]])
    with pytest.raises(ValueError, match="Sentence 1 has 2 true tags but 1 predicted tags"):
        entity_scores([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="Sentence 0 is a string"):
        entity_scores(["B-PER"], ["B-PER"])
    with pytest.raises(ValueError, match="Sentence 1: The tag 'PER' at position 2 is not O or PREFIX-TYPE"):
        entity_scores([["O"], ["O", "O", "O"]], [["O"], ["O", "B-PER", "PER"]])
    with pytest.raises(ValueError, match="No sentences to score"):
        entity_scores([], [])
    with pytest.raises(ValueError, match="'B-'"):
        entities(["B-"])


@pytest.mark.slow  # the developers' CoNLL-2003 copy
def test_scores_equal_seqeval_on_conll2003_dev_with_corrupted_predictions():
    true = read_conll(shared_data("conll2003/dev.txt")).tags
    assert entity_scores(true, true)["f1"] == 1.0
    labels = ["O"] + [f"{p}-{t}" for p in "BIES" for t in ("LOC", "MISC", "ORG", "PER")]
    rng = random.Random(2)
    for rate in (0.02, 0.1, 0.3):
        predicted = [[rng.choice(labels) if rng.random() < rate else tag for tag in sentence] for sentence in true]
        scores = assert_equal_to_seqeval(true, predicted)
        assert scores["true_entities"] == 5942
        assert 0.0 < scores["f1"] < 1.0
