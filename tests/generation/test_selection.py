"""Token selection: sampling statistics, the counter-based random numbers, penalties and bans."""

import numpy as np
import pytest
import scipy.stats
from keras import ops

from tests.generation.conftest import banned_by_ngrams
from tfllm.generation import selection

LOGITS = np.log(np.array([0.30, 0.20, 0.15, 0.12, 0.08, 0.06, 0.04, 0.03, 0.015, 0.005]))
DRAWS = 20000


def draw(top_k=0, top_p=1.0, temperature=1.0, num_candidates=None, step=0):
    """One token for each of `DRAWS` rows that share `LOGITS` but not their seeds."""
    rows = DRAWS
    keys = selection.random_keys(np.full((rows,), 7, "int32"), np.arange(rows, dtype="int32"))
    tokens = selection.sample(
        np.tile(LOGITS.astype("float32"), (rows, 1)),
        keys,
        step,
        np.full((rows,), temperature, "float32"),
        np.full((rows,), top_k, "int32"),
        np.full((rows,), top_p, "float32"),
        num_candidates,
    )
    return ops.convert_to_numpy(tokens)


def assert_follows(tokens, probabilities):
    """Chi-square goodness of fit at the 0.001 level; tokens of probability 0 never drawn."""
    support = np.flatnonzero(probabilities)
    assert set(np.unique(tokens)) <= set(support)
    counts = np.bincount(tokens, minlength=len(probabilities))[support]
    expected = DRAWS * probabilities[support]
    chi_square = ((counts - expected) ** 2 / expected).sum()
    assert chi_square < scipy.stats.chi2.ppf(0.999, len(support) - 1), (counts, expected)


def softmax(logits):
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


def test_random_sampling_follows_the_softmax():
    assert_follows(draw(), softmax(LOGITS))


def test_temperature_sharpens_and_flattens():
    assert_follows(draw(temperature=0.5, num_candidates=10), softmax(LOGITS / 0.5))
    assert_follows(draw(temperature=2.0), softmax(LOGITS / 2.0))


def test_top_k_keeps_the_k_most_likely():
    expected = softmax(LOGITS)
    expected[4:] = 0
    assert_follows(draw(top_k=4, num_candidates=4), expected / expected.sum())
    # A per-row top_k below the static number of candidates acts too.
    assert_follows(draw(top_k=4, num_candidates=10), expected / expected.sum())


def test_top_p_keeps_the_smallest_set_reaching_p():
    # Masses before each token: 0, .30, .50, .65, .77 ...: top_p=0.6 keeps 3 tokens.
    expected = softmax(LOGITS)
    expected[3:] = 0
    assert_follows(draw(top_p=0.6, num_candidates=10), expected / expected.sum())


def test_top_p_renormalizes_after_top_k():
    # Within the top 4 (.30, .20, .15, .12)/.77, masses before: 0, .39, .65: top_p=0.6 keeps 2.
    expected = softmax(LOGITS)
    expected[2:] = 0
    assert_follows(draw(top_k=4, top_p=0.6, num_candidates=10), expected / expected.sum())


def test_the_wrong_distribution_fails_the_check():
    with pytest.raises(AssertionError):
        assert_follows(draw(temperature=1.3), softmax(LOGITS))


def test_steps_draw_independently_and_reproducibly():
    first, again, second = draw(step=0), draw(step=0), draw(step=1)
    np.testing.assert_array_equal(first, again)
    # Independent draws agree with probability sum(p^2) = 0.17.
    assert abs(np.mean(first == second) - (softmax(LOGITS) ** 2).sum()) < 0.02


def test_uniform_is_uniform_and_a_pure_function():
    keys = selection.random_keys(np.array([1, 2], "int32"))
    values = ops.convert_to_numpy(selection.uniform(keys, 3, 50000))
    assert values.shape == (2, 50000)
    assert 0 < values.min() and values.max() < 1
    for row in values:
        assert scipy.stats.kstest(row, "uniform").pvalue > 0.001
    np.testing.assert_array_equal(values, ops.convert_to_numpy(selection.uniform(keys, 3, 50000)))
    assert not np.array_equal(values, ops.convert_to_numpy(selection.uniform(keys, 4, 50000)))


@pytest.mark.parametrize("ngram_size", [1, 2, 3])
def test_ban_repeated_ngrams_matches_the_definition(ngram_size):
    rng = np.random.default_rng(ngram_size)
    ids = rng.integers(0, 4, size=(16, 12)).astype("int32")  # a small vocabulary: many repeats
    lengths = rng.integers(1, 13, size=(16,)).astype("int32")
    banned = ops.convert_to_numpy(selection.ban_repeated_ngrams(np.zeros((16, 6), "float32"), ids, lengths, ngram_size))
    for row in range(16):
        expected = banned_by_ngrams(list(ids[row, : lengths[row]]), ngram_size)
        assert set(np.flatnonzero(banned[row] == selection.NEGATIVE)) == expected


def test_repetition_penalty():
    logits = np.array([[2.0, -1.0, 3.0, 0.5]], "float32")
    seen = np.array([[True, True, False, False]])
    penalized = ops.convert_to_numpy(selection.apply_repetition_penalty(logits, seen, 2.0))
    np.testing.assert_allclose(penalized, [[1.0, -2.0, 3.0, 0.5]])


def test_argmax_is_numpy_argmax_first_index_on_ties():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(64, 1000)).astype("float32")
    # Ties, including a tie for the maximum, and rows of equal values.
    values[:8] = np.round(values[:8])
    values[8, [3, 700]] = 10.0
    values[9] = -1e9
    np.testing.assert_array_equal(ops.convert_to_numpy(selection.argmax(values)), np.argmax(values, axis=-1))
