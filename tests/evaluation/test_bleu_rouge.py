"""BLEU and ROUGE equal to their reference implementations (sacrebleu, rouge-score)."""

import random

import pytest

from tests.data_files import sample_sentences
from tfllm.evaluation import corpus_bleu, rouge, rouge_tokens

sacrebleu = pytest.importorskip("sacrebleu")
rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")

# Chinese sentences (written for these tests) and edited versions of them.
CHINESE = [
    "今天天气很好，我们去公园散步。",
    "这家酒店的服务非常周到，房间也很干净。",
    "他在北京大学学习计算机科学。",
    "小猫坐在窗台上看着外面的雨。",
    "我们明天早上八点在火车站见面。",
    "这本书讲的是一个关于友谊的故事。",
]
CHINESE_HYPOTHESES = [
    "今天天气很好，我们去公园走走。",
    "这家酒店服务周到，房间干净。",
    "他在北京学习计算机。",
    "小狗坐在窗台上看着外面的雨。",
    "我们明天八点在车站见面",
    "这本书讲了一个友谊的故事。",
]


def edited(sentences, seed):
    """Each sentence with some words dropped, swapped or replaced: hypotheses that partly match."""
    rng = random.Random(seed)
    out = []
    for sentence in sentences:
        words = sentence.split()
        for _ in range(rng.randint(0, 3)):
            if not words:
                break
            i = rng.randrange(len(words))
            action = rng.choice(["drop", "swap", "replace"])
            if action == "drop":
                del words[i]
            elif action == "swap" and len(words) > 1:
                j = rng.randrange(len(words))
                words[i], words[j] = words[j], words[i]
            else:
                words[i] = rng.choice(["the", "a", "quickly", "lamp", "sea", "."])
        out.append(" ".join(words))
    return out


@pytest.fixture(scope="module")
def english():
    references = sample_sentences()[:200]
    return edited(references, seed=0), references


@pytest.mark.parametrize("tokenize", ["13a", "none"])
def test_bleu_equals_sacrebleu_on_english(english, tokenize):
    hypotheses, references = english
    ours = corpus_bleu(hypotheses, references, tokenize=tokenize)
    theirs = sacrebleu.corpus_bleu(hypotheses, [references], tokenize=tokenize)
    assert 10 < theirs.score < 95  # a partial match: every precision and the penalty matter
    assert ours["bleu"] == pytest.approx(theirs.score, abs=1e-9)
    assert ours["precisions"] == pytest.approx(theirs.precisions, abs=1e-9)
    assert ours["brevity_penalty"] == pytest.approx(theirs.bp, abs=1e-12)


def test_bleu_equals_sacrebleu_with_two_reference_streams(english):
    hypotheses, references = english
    second = edited(references, seed=1)
    ours = corpus_bleu(hypotheses, [references, second])
    assert ours["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references, second]).score, abs=1e-9)


def test_bleu_equals_sacrebleu_on_chinese():
    for tokenize in ("zh", "13a"):
        ours = corpus_bleu(CHINESE_HYPOTHESES, CHINESE, tokenize=tokenize)
        theirs = sacrebleu.corpus_bleu(CHINESE_HYPOTHESES, [CHINESE], tokenize=tokenize)
        assert ours["bleu"] == pytest.approx(theirs.score, abs=1e-9)
    # Characters as tokens give partial credit that whole-sentence "words" cannot.
    assert corpus_bleu(CHINESE_HYPOTHESES, CHINESE, tokenize="zh")["bleu"] > 30
    assert corpus_bleu(CHINESE_HYPOTHESES, CHINESE, tokenize="13a")["bleu"] < 10


def test_bleu_equals_sacrebleu_on_random_segments():
    rng = random.Random(3)
    words = "the cat sat on a mat . , dog 3.5 - 1990-2000 & &amp; ! ? 你好 世界 。 ， (x) don't".split()
    for _ in range(100):
        count = rng.randint(1, 5)
        hypotheses = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 12))) for _ in range(count)]
        references = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) for _ in range(count)]
        for tokenize in ("13a", "zh", "none"):
            expected = sacrebleu.corpus_bleu(hypotheses, [references], tokenize=tokenize).score
            assert corpus_bleu(hypotheses, references, tokenize=tokenize)["bleu"] == pytest.approx(expected, abs=1e-9)


def test_rouge_equals_rouge_score(english):
    hypotheses, references = english
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    scores = [scorer.score(reference, hypothesis) for hypothesis, reference in zip(hypotheses, references)]
    ours = rouge(hypotheses, references)
    for name in ("rouge1", "rouge2", "rougeL"):
        expected = sum(score[name].fmeasure for score in scores) / len(scores)
        assert 0.3 < expected < 0.99
        assert ours[name] == pytest.approx(expected, abs=1e-12)


def test_rouge_on_chinese_needs_the_zh_tokenization():
    # rouge-score drops every character outside [a-z0-9]: Chinese scores nothing its way.
    assert rouge(CHINESE_HYPOTHESES, CHINESE)["rouge1"] == 0.0
    assert rouge_tokens("我爱北京 abc", "zh") == ["我", "爱", "北", "京", "abc"]
    scores = rouge(CHINESE_HYPOTHESES, CHINESE, tokenize="zh")
    assert 0.6 < scores["rouge1"] < 1.0 and scores["rouge2"] < scores["rouge1"]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: corpus_bleu(["a", "b"], ["a"]), "2 hypotheses but 1 references"),
        (lambda: corpus_bleu([], []), "empty"),
        (lambda: corpus_bleu(["a"], [""]), "reference of segment 1 is empty"),
        (lambda: corpus_bleu(["a"], ["a"], tokenize="intl"), "tokenize"),
        (lambda: rouge(["a", "b"], ["a"]), "2 hypotheses but 1 references"),
        (lambda: rouge(["a"], ["  "]), "reference of line 1 is empty"),
        (lambda: rouge([3], ["a"]), "must hold strings"),
    ],
)
def test_bad_input_is_one_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
