"""bucket_by_length: similar lengths together, padding cut to the bucket, every example kept once."""

import numpy as np
import pytest
import tensorflow as tf

from tfllm.data import bucket_by_length


def _padded_batches(lengths, sequence_length=24, batch_size=5):
    mask = (np.arange(sequence_length)[None, :] < np.array(lengths)[:, None]).astype("int32")
    # Token i of example n is 1000 * n + i: every example stays recognisable after regrouping.
    ids = (1000 * np.arange(len(lengths))[:, None] + np.arange(sequence_length)[None, :] + 1) * mask
    features = {"token_ids": ids.astype("int32"), "segment_ids": 0 * mask, "padding_mask": mask}
    return tf.data.Dataset.from_tensor_slices((features, np.arange(len(lengths)))).batch(batch_size)


def test_buckets_cut_padding_and_keep_every_example():
    lengths = np.random.default_rng(0).integers(1, 25, size=97)
    batches = list(bucket_by_length(_padded_batches(lengths), batch_size=8, boundaries=(6, 12)))
    seen = []
    for features, labels in batches:
        width = features["token_ids"].shape[1]
        assert width in (6, 12, 24)
        real = features["padding_mask"].numpy().sum(axis=1)
        # The smallest bucket that holds the batch's longest example.
        assert width == min(b for b in (6, 12, 24) if b >= real.max())
        assert len(labels) <= 8
        for row, label in zip(features["token_ids"].numpy(), labels.numpy()):
            assert lengths[label] <= width
            np.testing.assert_array_equal(row[: lengths[label]], 1000 * label + np.arange(lengths[label]) + 1)
            assert not row[lengths[label]:].any()
            seen.append(int(label))
    assert sorted(seen) == list(range(97))
    assert sum(len(labels) == 8 for _, labels in batches) >= 97 // 8 - 2


def test_bad_arguments():
    dataset = _padded_batches([3, 4])
    with pytest.raises(ValueError, match="boundaries"):
        bucket_by_length(dataset, 8, boundaries=(12, 6))
    with pytest.raises(ValueError, match="batch_size"):
        bucket_by_length(dataset, 0, boundaries=(6,))
