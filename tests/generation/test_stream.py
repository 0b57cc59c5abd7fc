"""Streaming yields, one at a time, the tokens `generate` produces."""

import pytest

import tfllm
from tfllm.generation import generate, generate_text, stream, stream_text


@pytest.mark.parametrize(
    "options",
    [dict(), dict(sampler="top_p", top_p=0.9, temperature=0.8, seed=3), dict(repetition_penalty=1.5)],
    ids=["greedy", "top_p", "penalty"],
)
def test_stream_yields_what_generate_produces(gpt, options):
    expected = generate(gpt, [[5, 9, 30]], 12, **options)[0, 3:].tolist()
    produced = stream(gpt, [5, 9, 30], 12, **options)
    first = next(produced)  # available before the rest is computed
    assert [first, *produced] == expected


def test_stream_stops_after_a_stop_token(gpt):
    tokens = generate(gpt, [[5, 9, 30]], 12)[0, 3:].tolist()
    stop = tokens[4]
    streamed = list(stream(gpt, [5, 9, 30], 12, stop_token_ids=[stop]))
    assert streamed == tokens[: tokens.index(stop) + 1]


def test_stream_text_joins_to_generate_text():
    tokenizer = tfllm.tokenizers.BytePairTokenizer.train([tfllm.data.samples.STORIES], 400)
    model = tfllm.models.GPT("gpt-test", vocabulary_size=tokenizer.vocabulary_size())
    pieces = list(stream_text(model, tokenizer, "The lighthouse", 16, sampler="random", seed=4))
    assert len(pieces) > 1
    assert "".join(pieces) == generate_text(model, tokenizer, "The lighthouse", 16, sampler="random", seed=4, include_prompt=False)


def test_beam_search_does_not_stream(gpt):
    with pytest.raises(ValueError, match="do not stream"):
        next(stream(gpt, [1, 2], 4, sampler="beam"))
