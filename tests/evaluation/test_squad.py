"""SQuAD exact match and F1: hand-computed cases, the official v1.1 script's rules, Chinese."""

import collections
import random
import re
import string

import pytest

from tests.data_files import shared_data
from tfllm.data import QAExample, read_squad
from tfllm.evaluation import normalize_answer, squad_exact_match, squad_f1, squad_scores
from tfllm.evaluation.squad import answer_tokens


# The official evaluate-v1.1.py's functions, as published with SQuAD (run under Python 3).
def official_normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def official_f1_score(prediction, ground_truth):
    prediction_tokens = official_normalize_answer(prediction).split()
    ground_truth_tokens = official_normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def official_exact_match_score(prediction, ground_truth):
    return official_normalize_answer(prediction) == official_normalize_answer(ground_truth)


def official_max(metric, prediction, ground_truths):
    return max(metric(prediction, ground_truth) for ground_truth in ground_truths)


@pytest.mark.parametrize(
    "text, normalized",
    [
        ("The Denver Broncos", "denver broncos"),
        ("  Denver\tBroncos \n", "denver broncos"),
        ("a cat, an owl and the dog.", "cat owl and dog"),
        ("Theater anatomy", "theater anatomy"),  # articles only as whole words
        ("A", ""),
        ("the-end", "theend"),  # punctuation goes before articles
        ("U.S.A.", "usa"),
        ("rock 'n' roll", "rock n roll"),
        ("24–10", "24–10"),  # an en dash is not ASCII punctuation: kept, as the official script keeps it
        ("\u00c9COLE", "école"),
        ("", ""),
    ],
)
def test_normalize_answer_follows_the_official_steps(text, normalized):
    assert normalize_answer(text) == normalized == official_normalize_answer(text)


def test_hand_computed_scores():
    assert squad_exact_match("the Denver Broncos!", ["Denver Broncos"]) == 1.0
    assert squad_exact_match("Denver", ["Denver Broncos"]) == 0.0
    # "denver" against "denver broncos": precision 1, recall 1/2, F1 2/3.
    assert squad_f1("Denver", ["Denver Broncos"]) == pytest.approx(2 / 3)
    # Bags of tokens: "a a b" against "a b b": 2 common, precision = recall = 2/3.
    assert squad_f1("x x y", "x y y") == pytest.approx(2 / 3)
    assert squad_f1("Carolina Panthers won", ["Panthers"]) == pytest.approx(2 * (1 / 3) * 1 / (1 / 3 + 1))
    assert squad_f1("Broncos", ["Panthers"]) == 0.0


def test_the_best_reference_counts():
    references = ["Denver Broncos", "Broncos", "the Denver Broncos team"]
    assert squad_exact_match("broncos", references) == 1.0
    assert squad_f1("Denver Broncos team", references) == pytest.approx(1.0)
    assert squad_f1("Denver", references) == pytest.approx(2 / 3)
    assert squad_f1("team", references) == pytest.approx(0.5)


def test_empty_predictions():
    assert squad_exact_match("", ["Denver Broncos"]) == 0.0
    assert squad_f1("", ["Denver Broncos"]) == 0.0
    # Both normalize to nothing: equal (exact match 1) but no common token (F1 0), as officially.
    assert squad_exact_match("The", ["a"]) == 1.0
    assert squad_f1("The", ["a"]) == 0.0


def test_chinese_characters_are_tokens():
    assert answer_tokens("2018年 冬奥会") == ["2018", "年", "冬", "奥", "会"]
    assert answer_tokens("《北京》，中国。") == ["北", "京", "中", "国"]
    # 北京 against 北京市: 2 common of 2 predicted and 3 true, F1 0.8 (officially 0: one token each).
    assert squad_f1("北京", ["北京市"]) == pytest.approx(0.8)
    assert official_f1_score("北京", "北京市") == 0
    assert squad_exact_match("北京市。", ["“北京市”"]) == 1.0
    assert squad_exact_match("北 京 市", ["北京市"]) == 1.0
    # 在北京 against 北京: 2 of 3 and 2 of 2, F1 0.8; against 中国北京: 2 of 3 and 2 of 4, F1 4/7.
    assert squad_f1("在北京", ["北京", "中国北京"]) == pytest.approx(0.8)
    assert squad_f1("iPhone 手机", ["iphone手机"]) == 1.0


def test_equal_to_the_official_functions_on_random_answers():
    rng = random.Random(0)
    words = ["the", "a", "an", "The", "Broncos", "Denver", "broncos", "A.", "an,", "(the", "24", "–", "U.S.", "'s"]
    words += ["", "\t", "Éa", "ñ"]
    for _ in range(3000):
        prediction = " ".join(rng.choice(words) for _ in range(rng.randint(0, 6)))
        references = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 6))) for _ in range(rng.randint(1, 3))]
        assert normalize_answer(prediction) == official_normalize_answer(prediction)
        assert squad_exact_match(prediction, references) == float(
            official_max(official_exact_match_score, prediction, references)
        )
        assert squad_f1(prediction, references) == official_max(official_f1_score, prediction, references)


def test_squad_scores_on_lists_and_dicts():
    predictions = ["Denver Broncos", "the Panthers", "24 10"]
    references = [["Denver Broncos", "Broncos"], ["Carolina Panthers"], "24–10"]
    scores = squad_scores(predictions, references)
    assert scores == {"exact_match": pytest.approx(1 / 3), "f1": pytest.approx((1 + 2 / 3 + 0) / 3), "count": 3}
    examples = [
        QAExample(f"q{i}", "?", "", [answers] if isinstance(answers, str) else answers, [0], "")
        for i, answers in enumerate(references)
    ]
    by_id = {f"q{i}": text for i, text in enumerate(predictions)}
    assert squad_scores(dict(by_id, unasked="ignored"), examples) == scores
    assert squad_scores(predictions, examples) == scores


def test_squad_scores_errors():
    with pytest.raises(ValueError, match="2 predictions but 1 reference lists"):
        squad_scores(["a", "b"], [["a"]])
    example = QAExample("q7", "?", "", ["a"], [0], "")
    with pytest.raises(ValueError, match="No prediction for question 'q7'"):
        squad_scores({"q1": "a"}, [example])
    with pytest.raises(ValueError, match="Question 'q8' has no reference answer"):
        squad_scores({"q8": "a"}, [QAExample("q8", "?", "", [], [], "")])
    with pytest.raises(ValueError, match="Question 1 has no reference answer"):
        squad_scores(["a", "b"], [["a"], []])
    with pytest.raises(ValueError, match="The prediction for question 0 is NoneType"):
        squad_scores([None], [["a"]])
    with pytest.raises(ValueError, match="No questions to score"):
        squad_scores([], [])
    with pytest.raises(ValueError, match="must be QAExamples"):
        squad_scores({"q1": "a"}, [["a"]])
    with pytest.raises(ValueError, match="No reference answers"):
        squad_f1("a", [])


@pytest.mark.slow  # the developers' SQuAD v1.1 copy
def test_equal_to_the_official_evaluation_on_squad_dev():
    examples = read_squad(shared_data("squad/dev.json"))
    rng = random.Random(1)
    predictions = {}
    for example in examples:  # the first answer, widened or narrowed by a few characters
        start, text = example.answer_starts[0], example.answers[0]
        begin = max(0, start + rng.randint(-10, 5))
        predictions[example.id] = example.context[begin : start + len(text) + rng.randint(-5, 10)]
    scores = squad_scores(predictions, examples)
    exact = sum(official_max(official_exact_match_score, predictions[e.id], e.answers) for e in examples)
    f1 = sum(official_max(official_f1_score, predictions[e.id], e.answers) for e in examples)
    assert scores["count"] == 4961
    assert scores["exact_match"] == pytest.approx(exact / 4961, abs=1e-12)
    assert scores["f1"] == pytest.approx(f1 / 4961, abs=1e-12)
    assert 0.0 < scores["exact_match"] < scores["f1"] < 1.0
    references = squad_scores([e.answers[0] for e in examples], [e.answers for e in examples])
    assert references == {"exact_match": 1.0, "f1": 1.0, "count": 4961}
