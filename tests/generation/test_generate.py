"""`tfllm.generation.generate`: every sampler and option against references, on a tiny GPT."""

import keras
import numpy as np
import pytest
import scipy.stats

from tests.generation.conftest import (
    PROMPTS,
    banned_by_ngrams,
    next_token_logits,
    reference_beam_search,
    reference_greedy,
    row,
)
from tfllm.generation import generate

NEW = 8
TENSORFLOW = keras.config.backend() == "tensorflow"


def run(*args, **options):
    """`generate` as a plain TensorFlow graph: what a serving export runs, and quicker to
    build than XLA. `test_xla_gives_the_same_tokens_as_the_graph` covers XLA (on JAX,
    both are `jax.jit`)."""
    return generate(*args, jit_compile=False, **options)


def test_greedy_with_cache_equals_full_forward_pass_per_step(gpt):
    output = run(gpt, PROMPTS, NEW)
    assert output.dtype == np.int32
    assert output.shape == (len(PROMPTS), max(map(len, PROMPTS)) + NEW)
    for index, prompt in enumerate(PROMPTS):
        assert row(output, index, len(prompt), NEW) == reference_greedy(gpt, prompt, NEW)
        # Each row is padded (with pad_token_id=0) after its continuation.
        assert not output[index, len(prompt) + NEW :].any()


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(sampler="top_p", top_p=0.8, top_k=20, temperature=0.8, seed=4, num_return_sequences=2,
             repetition_penalty=1.2, stop_token_ids=[1, 2, 3]),
        dict(sampler="beam", num_beams=3, length_penalty=0.5, no_repeat_ngram_size=2, stop_token_ids=[4]),
    ],
    ids=["greedy", "sampling", "beam"],
)
@pytest.mark.skipif(not TENSORFLOW, reason="on JAX, both are jax.jit")
def test_xla_gives_the_same_tokens_as_the_graph(gpt, options):
    np.testing.assert_array_equal(generate(gpt, PROMPTS, NEW, **options), run(gpt, PROMPTS, NEW, **options))


def test_prompts_of_different_lengths_each_get_their_result_alone(gpt):
    batch = run(gpt, PROMPTS, NEW)
    for index, prompt in enumerate(PROMPTS):
        alone = run(gpt, [prompt], NEW)
        np.testing.assert_array_equal(batch[index, : len(prompt) + NEW], alone[0])


def test_dense_prompts_with_padding_mask_and_ragged_tensor_agree(gpt):
    expected = run(gpt, PROMPTS, NEW)
    longest = max(map(len, PROMPTS))
    dense = np.full((len(PROMPTS), longest), 17, "int32")  # padding ids must not matter
    mask = np.zeros_like(dense)
    for index, prompt in enumerate(PROMPTS):
        dense[index, : len(prompt)] = prompt
        mask[index, : len(prompt)] = 1
    np.testing.assert_array_equal(run(gpt, dense, NEW, padding_mask=mask), expected)
    if TENSORFLOW:
        import tensorflow as tf

        np.testing.assert_array_equal(run(gpt, tf.ragged.constant(PROMPTS), NEW), expected)


def test_dense_prompts_without_mask_are_full_length(gpt):
    prompts = np.array([PROMPTS[0], PROMPTS[0][::-1], PROMPTS[0]], "int32")
    output = run(gpt, prompts, NEW)
    for index in range(3):
        assert list(output[index]) == reference_greedy(gpt, list(prompts[index]), NEW)


def test_top_k_1_equals_greedy(gpt):
    np.testing.assert_array_equal(run(gpt, PROMPTS, NEW, "top_k", top_k=1, seed=3), run(gpt, PROMPTS, NEW))


def test_beam_search_with_one_beam_equals_greedy(gpt):
    np.testing.assert_array_equal(run(gpt, PROMPTS, NEW, "beam", num_beams=1), run(gpt, PROMPTS, NEW))


def test_beam_search_equals_textbook_beam_search(gpt):
    beams, steps = 3, 4
    output = run(gpt, PROMPTS, steps, "beam", num_beams=beams, num_return_sequences=beams)
    for index, prompt in enumerate(PROMPTS):
        expected = reference_beam_search(gpt, prompt, steps, beams)
        got = [row(output, index * beams + rank, len(prompt), steps) for rank in range(beams)]
        assert got == [sequence for _, sequence in expected]
        # Beam search finds a sequence at least as likely as greedy's.
        greedy = reference_greedy(gpt, prompt, steps)
        assert expected[0][0] >= _log_likelihood(gpt, greedy, len(prompt)) - 1e-6


def reference_beam_search_with_stops(logits_of, prompt, max_new_tokens, num_beams, stop, length_penalty):
    """Beam search where a beam ends at a stop token and, finished, keeps competing at its
    final length: hypotheses ranked by `log-probability / generated_length ** length_penalty`.
    `logits_of(sequence)` gives the next-token logits. Returns the final beams, best first, as
    (sequence, generated tokens)."""
    beams = [(0.0, list(prompt), 0, False)]  # (log-probability, sequence, generated, finished)

    def rank(beam):
        return beam[0] / max(beam[2], 1) ** length_penalty

    for _ in range(max_new_tokens):
        candidates = []
        for score, sequence, generated, finished in beams:
            if finished:
                candidates.append((score, sequence, generated, True))
                continue
            logits = logits_of(sequence)
            log_probs = logits - np.logaddexp.reduce(logits)
            for token in np.argsort(-log_probs)[:num_beams]:  # a beam's best suffice: same length
                candidates.append((score + log_probs[token], sequence + [int(token)], generated + 1, int(token) in stop))
        beams = sorted(candidates, key=rank, reverse=True)[:num_beams]
    return [(sequence, generated) for _, sequence, generated, _ in beams]


@pytest.mark.parametrize("length_penalty", [0.0, 0.5, 1.0])
def test_beam_search_with_stop_tokens_ranks_by_length_normalised_log_probability(gpt, length_penalty):
    beams, steps, pad = 3, 5, 511
    cache = {}

    def logits_of(sequence):
        if tuple(sequence) not in cache:
            cache[tuple(sequence)] = next_token_logits(gpt, sequence)
        return cache[tuple(sequence)]

    # A stop token with which the reference's best beams end at different lengths, so that the
    # length penalty decides: the first such among the tokens the beams produce without one.
    plain = run(gpt, PROMPTS, steps, "beam", num_beams=beams, num_return_sequences=beams)
    tokens = dict.fromkeys(int(token) for token in plain[:, min(map(len, PROMPTS)) :].ravel() if token != 0)
    for stop in tokens:
        expected = [reference_beam_search_with_stops(logits_of, p, steps, beams, {stop}, length_penalty) for p in PROMPTS]
        if len({generated for prompt_beams in expected for _, generated in prompt_beams}) > 1:
            break
    else:
        pytest.fail(f"no stop token among {list(tokens)} ends the beams at different lengths")

    output = run(
        gpt, PROMPTS, steps, "beam", num_beams=beams, num_return_sequences=beams, stop_token_ids=[stop],
        length_penalty=length_penalty, pad_token_id=pad,
    )
    for index, prompt in enumerate(PROMPTS):
        got = [row(output, index * beams + rank, len(prompt), steps) for rank in range(beams)]
        assert got == [sequence + [pad] * (len(prompt) + steps - len(sequence)) for sequence, _ in expected[index]]
        # The order, checked again from each returned sequence's own log-probability.
        ranks = [
            _log_likelihood(gpt, sequence, len(prompt)) / generated**length_penalty for sequence, generated in expected[index]
        ]
        assert ranks == sorted(ranks, reverse=True)


def test_no_repeat_ngram_size(gpt):
    size = 2
    output = run(gpt, PROMPTS, 12, no_repeat_ngram_size=size)
    for index, prompt in enumerate(PROMPTS):
        sequence = row(output, index, len(prompt), 12)
        ngrams = [tuple(sequence[i : i + size]) for i in range(len(sequence) - size + 1)]
        assert len(ngrams) == len(set(ngrams)), sequence
        assert sequence == reference_greedy(gpt, prompt, 12, no_repeat_ngram_size=size)
    # Without the option, this model does repeat itself, so the test can fail.
    plain = run(gpt, PROMPTS, 12)
    sequence = row(plain, 0, len(PROMPTS[0]), 12)
    assert len({tuple(sequence[i : i + size]) for i in range(len(sequence) - 1)}) < len(sequence) - 1


def test_repetition_penalty_matches_reference(gpt):
    output = run(gpt, PROMPTS, NEW, repetition_penalty=1.8)
    assert not np.array_equal(output, run(gpt, PROMPTS, NEW))
    for index, prompt in enumerate(PROMPTS):
        assert row(output, index, len(prompt), NEW) == reference_greedy(gpt, prompt, NEW, repetition_penalty=1.8)


def test_stop_tokens_stop_each_row_independently(gpt):
    plain = run(gpt, PROMPTS, NEW)
    # Stop on a token row 0 first produces after a few steps: row 0 stops right there; the
    # other rows go on, or stop exactly where the reference stops.
    continuation = list(plain[0, len(PROMPTS[0]) : len(PROMPTS[0]) + NEW])
    step = next(step for step in range(1, NEW) if continuation[step] not in continuation[:step])
    stop = int(continuation[step])
    output = run(gpt, PROMPTS, NEW, stop_token_ids=[stop], pad_token_id=1)
    for index, prompt in enumerate(PROMPTS):
        expected = reference_greedy(gpt, prompt, NEW, stop=(stop,))
        assert list(output[index, : len(expected)]) == expected
        assert (output[index, len(expected) :] == 1).all()
    assert list(output[0, len(PROMPTS[0]) :][: step + 2]) == continuation[: step + 1] + [1]


def test_same_seed_same_output_other_seed_other_output(gpt):
    options = dict(sampler="top_p", top_p=0.9, temperature=1.5, seed=11)
    first = run(gpt, PROMPTS, NEW, **options)
    np.testing.assert_array_equal(first, run(gpt, PROMPTS, NEW, **options))
    assert not np.array_equal(first, run(gpt, PROMPTS, NEW, **{**options, "seed": 12}))
    # Without a seed, each call draws a fresh one.
    unseeded = [run(gpt, PROMPTS, NEW, sampler="top_p", top_p=0.9, temperature=1.5) for _ in range(2)]
    assert not np.array_equal(unseeded[0], unseeded[1])
    for output in unseeded:
        for index, prompt in enumerate(PROMPTS):
            assert list(output[index, : len(prompt)]) == prompt


def test_num_return_sequences(gpt):
    output = run(gpt, PROMPTS, NEW, "random", seed=0, num_return_sequences=3)
    assert output.shape == (3 * len(PROMPTS), max(map(len, PROMPTS)) + NEW)
    for index, prompt in enumerate(PROMPTS):
        samples = output[3 * index : 3 * index + 3]
        assert (samples[:, : len(prompt)] == prompt).all()
        assert len({tuple(sample) for sample in samples}) == 3  # independent samples differ
    # The best 2 of 3 beams are the first 2 rows of all 3, per prompt.
    beams = run(gpt, PROMPTS, NEW, "beam", num_beams=3, num_return_sequences=2)
    all_beams = run(gpt, PROMPTS, NEW, "beam", num_beams=3, num_return_sequences=3)
    np.testing.assert_array_equal(beams, np.delete(all_beams, [2, 5, 8], axis=0))


def test_sampled_first_tokens_follow_the_filtered_distribution(gpt):
    """Chi-square test of 4000 first tokens against the top-k then top-p filtered softmax."""
    prompt, draws, top_k, top_p, temperature = [11, 42, 7], 4000, 12, 0.5, 0.7
    output = run(
        gpt, [prompt], 1, "random", top_k=top_k, top_p=top_p, temperature=temperature, seed=5, num_return_sequences=draws
    )
    tokens = output[:, len(prompt)]

    logits = next_token_logits(gpt, prompt) / temperature
    order = np.argsort(-logits)[:top_k]
    probabilities = np.exp(logits[order] - logits[order].max())
    probabilities /= probabilities.sum()
    kept = order[: np.searchsorted(np.cumsum(probabilities), top_p) + 1]
    expected = np.exp(logits[kept] - logits[kept].max())
    expected /= expected.sum()
    assert 2 <= len(kept) < top_k  # both filters act

    assert set(tokens) <= set(kept)
    counts = np.array([(tokens == token).sum() for token in kept])
    chi_square = ((counts - draws * expected) ** 2 / (draws * expected)).sum()
    assert chi_square < scipy.stats.chi2.ppf(0.999, len(kept) - 1), (counts, draws * expected)


@pytest.mark.parametrize(
    "arguments, options, name",
    [
        ((PROMPTS, 0), {}, "max_new_tokens"),
        ((PROMPTS, 1.5), {}, "max_new_tokens"),
        ((PROMPTS, 60), {}, "max_new_tokens"),  # 5 + 60 > max_sequence_length=64
        ((PROMPTS, 4, "nucleus"), {}, "sampler"),
        ((PROMPTS, 4, "top_p"), {"top_p": 0.0}, "top_p"),
        ((PROMPTS, 4, "top_p"), {"top_p": 1.5}, "top_p"),
        ((PROMPTS, 4, "top_p"), {}, "top_p"),
        ((PROMPTS, 4, "top_k"), {"top_k": 0}, "top_k"),
        ((PROMPTS, 4, "random"), {"temperature": 0.0}, "temperature"),
        ((PROMPTS, 4, "random"), {"temperature": -1.0}, "temperature"),
        ((PROMPTS, 4), {"temperature": 0.7}, "temperature"),  # greedy does not sample
        ((PROMPTS, 4, "beam"), {"top_k": 5}, "top_k"),
        ((PROMPTS, 4, "beam"), {"seed": 1}, "seed"),
        ((PROMPTS, 4, "random"), {"num_beams": 4}, "num_beams"),
        ((PROMPTS, 4, "beam"), {"num_beams": 0}, "num_beams"),
        ((PROMPTS, 4, "beam"), {"num_beams": 2, "num_return_sequences": 3}, "num_return_sequences"),
        ((PROMPTS, 4), {"num_return_sequences": 2}, "num_return_sequences"),
        ((PROMPTS, 4), {"no_repeat_ngram_size": 0}, "no_repeat_ngram_size"),
        ((PROMPTS, 4), {"repetition_penalty": 0.0}, "repetition_penalty"),
        ((PROMPTS, 4), {"stop_token_ids": [512]}, "stop_token_ids"),
        ((PROMPTS, 4), {"pad_token_id": -1}, "pad_token_id"),
        ((PROMPTS, 4), {"top_n": 3}, "top_n"),  # unknown option
        (([[1, 2], []], 4), {}, "at least one token"),
        (([[1, 2], [512]], 4), {}, "token_ids"),
        ((np.array([1, 2, 3]), 4), {}, "token_ids"),
        ((np.array([[1, 2, 3]]), 4), {"padding_mask": np.array([[0, 1, 1]])}, "padding_mask"),
        (([[1, 2, 3]], 4), {"padding_mask": np.array([[1, 1, 1]])}, "padding_mask"),
    ],
)
def test_bad_input_raises_value_error_naming_it(gpt, arguments, options, name):
    with pytest.raises(ValueError, match=name):
        run(gpt, *arguments, **options)


def test_a_model_without_gpt_layers_is_rejected():
    inputs = keras.Input((None,), dtype="int32")
    model = keras.Model(inputs, keras.layers.Embedding(10, 4)(inputs))
    with pytest.raises(ValueError, match=r"tfllm\.models\.GPT"):
        run(model, [[1, 2]], 2)


def test_a_second_call_with_the_same_shapes_does_not_retrace(gpt, monkeypatch):
    calls = []
    dense = gpt.get_layer("transformer_block_0").qkv_dense
    original = dense.call
    monkeypatch.setattr(dense, "call", lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    options = dict(sampler="top_k", top_k=4)
    generate(gpt, PROMPTS, NEW, temperature=0.9, seed=1, **options)
    assert calls  # the first call traces, running the layers' Python code
    calls.clear()
    # Other seeds, temperatures and prompt ids of the same shapes reuse the compiled loop.
    generate(gpt, PROMPTS, NEW, temperature=1.3, seed=2, **options)
    generate(gpt, [[1, 2, 3, 4, 5], [6], [7, 8, 9]], NEW, temperature=0.5, seed=3, **options)
    assert calls == []
    if TENSORFLOW:
        from tfllm.generation.generate import _COMPILED

        # One `tf.function` for these options, traced exactly once.
        # (The cache's keys hold the static options as a tuple of pairs.)
        (function,) = [
            f for key, f in _COMPILED[gpt].items() if any(isinstance(part, tuple) and ("num_candidates", 4) in part for part in key)
        ]
        assert function.experimental_get_tracing_count() == 1
        # A new prompt length is a new shape: it traces again.
        generate(gpt, [[1, 2, 3, 4, 5, 6]], NEW, seed=4, **options)
        assert function.experimental_get_tracing_count() == 2


def _log_likelihood(model, sequence, prompt_length):
    total = 0.0
    for position in range(prompt_length, len(sequence)):
        logits = next_token_logits(model, sequence[:position])
        total += logits[sequence[position]] - np.logaddexp.reduce(logits)
    return total
