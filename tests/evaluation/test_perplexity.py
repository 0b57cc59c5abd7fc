"""Sliding-window perplexity against a direct computation from the model's logits."""

import math

import keras
import numpy as np
import pytest

import tfllm
from tfllm.evaluation import perplexity
from tfllm.tokenizers import BytePairTokenizer


@pytest.fixture(scope="module")
def setup():
    tokenizer = BytePairTokenizer.train([tfllm.data.samples.STORIES], 400, special_tokens=["<|endoftext|>"])
    keras.utils.set_random_seed(2)
    model = tfllm.models.GPT("gpt-test", vocabulary_size=tokenizer.vocabulary_size(), max_sequence_length=16)
    with open(tfllm.data.samples.STORIES, encoding="utf-8") as file:
        text = file.read()[:600]
    return model, tokenizer, text


def direct_nll(model, ids, context):
    """Each token t >= 1 predicted from at most `context` preceding tokens, one forward pass each."""
    total = 0.0
    for target in range(1, len(ids)):
        window = ids[max(0, target - context) : target]
        logits = keras.ops.convert_to_numpy(
            model({"token_ids": np.array([window], "int32"), "padding_mask": np.ones((1, len(window)), "int32")})
        )[0, -1].astype("float64")
        total -= logits[ids[target]] - np.logaddexp.reduce(logits)
    return total


def test_stride_one_equals_a_direct_computation(setup):
    model, tokenizer, text = setup
    text = text[:150]
    ids = [tokenizer.end_of_text_id] + tokenizer([text]).to_list()[0]
    result = perplexity(model, tokenizer, text, stride=1)
    # Stride 1: every token is predicted from the whole window before it (16 tokens, or all
    # there are at the start).
    expected = direct_nll(model, ids, 16)
    assert result["tokens"] == len(ids) - 1 and result["characters"] == len(text)
    assert result["nats_per_token"] == pytest.approx(expected / (len(ids) - 1), rel=1e-5)
    assert result["perplexity"] == pytest.approx(math.exp(expected / (len(ids) - 1)), rel=1e-5)
    assert result["bits_per_character"] == pytest.approx(expected / len(text) / math.log(2), rel=1e-5)


def test_every_token_is_scored_once_whatever_the_stride(setup):
    model, tokenizer, text = setup
    ids = tokenizer([text]).to_list()[0]
    results = [perplexity(model, tokenizer, text, stride=stride, batch_size=3) for stride in (1, 5, 8, 16)]
    assert {result["tokens"] for result in results} == {len(ids)}  # the end-of-text token starts it
    # More context (a smaller stride) changes the score; disjoint windows are the coarsest.
    assert len({round(result["nats_per_token"], 6) for result in results}) == 4


def test_a_text_within_one_window_is_one_forward_pass(setup):
    model, tokenizer, _ = setup
    text = "The lamp"
    ids = [tokenizer.end_of_text_id] + tokenizer([text]).to_list()[0]
    assert len(ids) <= 16
    result = perplexity(model, tokenizer, text)
    assert result["nats_per_token"] * result["tokens"] == pytest.approx(direct_nll(model, ids, 16), rel=1e-5)


def test_bad_input(setup):
    model, tokenizer, text = setup
    with pytest.raises(ValueError, match="stride"):
        perplexity(model, tokenizer, text, stride=17)
    with pytest.raises(ValueError, match="empty"):
        perplexity(model, tokenizer, "")
