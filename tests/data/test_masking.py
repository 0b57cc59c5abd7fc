import numpy as np
import pytest
import tensorflow as tf

from tfllm.data import MaskedLMMasker

VOCAB, PAD, CLS, SEP, MASK = 1000, 0, 1, 2, 3
SPECIAL = [PAD, CLS, SEP, MASK]


def packed_batch(batch=512, length=64, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(10, VOCAB, size=(batch, length)).astype("int32")
    lengths = rng.integers(10, length + 1, size=batch)
    for row, n in enumerate(lengths):
        ids[row, 0] = CLS
        ids[row, n // 2] = SEP
        ids[row, n - 1] = SEP
        ids[row, n:] = PAD
    return ids


def test_mask_rate_and_80_10_10_split():
    ids = packed_batch(batch=2048)
    masker = MaskedLMMasker(VOCAB, MASK, SPECIAL, sequence_length=64)
    out = {k: v.numpy() for k, v in masker(ids, tf.constant([1, 2])).items()}
    weights = out["mask_weights"]
    candidates = ~np.isin(ids, SPECIAL)
    # Exactly round(15%) of each row's non-special tokens, at least one.
    expected = np.clip(np.round(candidates.sum(1) * 0.15), 1, masker.max_predictions)
    np.testing.assert_array_equal(weights.sum(1), expected)

    rows, slots = np.nonzero(weights)
    positions = out["mask_positions"][rows, slots]
    assert candidates[rows, positions].all(), "a special token was selected"
    np.testing.assert_array_equal(out["mask_ids"][rows, slots], ids[rows, positions])
    corrupted = out["token_ids"][rows, positions]
    original = ids[rows, positions]
    n = len(rows)
    masked = np.mean(corrupted == MASK)
    kept = np.mean(corrupted == original)
    replaced = 1 - masked - kept
    assert n > 5000
    assert abs(masked - 0.8) < 0.02 and abs(kept - 0.1) < 0.02 and abs(replaced - 0.1) < 0.02
    assert not np.isin(corrupted[(corrupted != MASK) & (corrupted != original)], SPECIAL).any()
    # Nothing outside the selected positions changed.
    unselected = np.ones_like(ids, bool)
    unselected[rows, positions] = False
    np.testing.assert_array_equal(out["token_ids"][unselected], ids[unselected])


def test_different_seeds_mask_differently_same_seed_identically():
    ids = packed_batch(batch=4)
    masker = MaskedLMMasker(VOCAB, MASK, SPECIAL, sequence_length=64)
    a = masker(ids, tf.constant([1, 2]))["mask_positions"].numpy()
    b = masker(ids, tf.constant([1, 2]))["mask_positions"].numpy()
    c = masker(ids, tf.constant([5, 6]))["mask_positions"].numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_whole_word_masking_masks_whole_words():
    ids = packed_batch(batch=256)
    continuation = np.zeros(VOCAB, bool)
    continuation[500:] = True  # ids >= 500 continue the previous word
    masker = MaskedLMMasker(VOCAB, MASK, SPECIAL, sequence_length=64, continuation_mask=continuation.tolist())
    out = {k: v.numpy() for k, v in masker(ids, tf.constant([3, 4])).items()}
    selected_total, candidate_total = 0, 0
    for row in range(len(ids)):
        selected = set(out["mask_positions"][row][out["mask_weights"][row] > 0].tolist())
        # Group the row into words and check each is all-or-nothing.
        word = []
        for position, token in enumerate(ids[row]):
            special = token in SPECIAL
            if word and (special or not continuation[token]):
                assert len(selected & set(word)) in (0, len(word)), (row, word, selected)
                word = []
            if not special:
                word.append(position)
        assert 1 <= len(selected) <= masker.max_predictions
        selected_total += len(selected)
        candidate_total += (~np.isin(ids[row], SPECIAL)).sum()
    # Whole words fill the 15% budget nearly, never beyond it on average.
    assert 0.12 < selected_total / candidate_total <= 0.155


def test_bad_rates_raise():
    with pytest.raises(ValueError, match="mask_rate"):
        MaskedLMMasker(VOCAB, MASK, SPECIAL, 64, mask_rate=0)
    with pytest.raises(ValueError, match="random_token_rate"):
        MaskedLMMasker(VOCAB, MASK, SPECIAL, 64, mask_token_rate=0.9, random_token_rate=0.2)
