import numpy as np
import pytest
import tensorflow as tf
import keras_hub

from tfllm.data import causal_lm_dataset, token_stream

EOT = 256


@pytest.fixture
def tokenizer():
    return keras_hub.tokenizers.ByteTokenizer()


@pytest.fixture
def corpus(tmp_path):
    first = tmp_path / "a.txt"
    first.write_text("hello world\nsecond line\n", encoding="utf-8")
    second = tmp_path / "b.txt"
    second.write_text("another document é\n", encoding="utf-8")
    return [str(first), str(second)]


def expected_stream(paths):
    ids = []
    for path in paths:
        ids += list(open(path, "rb").read()) + [EOT]
    return ids


def test_token_stream_joins_documents_with_end_of_text(tokenizer, corpus):
    stream = [int(t) for t in token_stream(corpus, tokenizer, EOT)]
    assert stream == expected_stream(corpus)


def test_token_stream_drops_carriage_returns_and_passes_other_bytes_on(tokenizer, tmp_path):
    # As documented: TextLineDataset drops every "\r", a last line gets its "\n", and bytes that
    # are not UTF-8 reach the tokenizer unchanged (the byte tokenizer keeps them).
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"a\r\nb\rc\n\xffd")
    assert [int(t) for t in token_stream(str(path), tokenizer, EOT)] == [*b"a\nbc\n\xffd\n", EOT]


def test_windows_cover_the_corpus(tokenizer, corpus):
    length = 7
    dataset = causal_lm_dataset(corpus, tokenizer, sequence_length=length, batch_size=2, end_of_text_id=EOT,
                                shuffle_buffer=0, drop_remainder=False)
    stream = expected_stream(corpus)
    windows = []
    for features, labels in dataset:
        assert features["token_ids"].shape[1:] == (length,)
        np.testing.assert_array_equal(features["padding_mask"], 1)
        for inputs, targets in zip(features["token_ids"].numpy(), labels.numpy()):
            np.testing.assert_array_equal(inputs[1:], targets[:-1])  # labels are inputs shifted by one
            windows.append(list(inputs) + [targets[-1]])
    # Consecutive, non-overlapping windows of length + 1 over the stream; only a short tail is left.
    covered = [token for window in windows for token in window]
    assert covered == stream[: len(covered)]
    assert len(stream) - len(covered) < length + 1


def test_shuffle_changes_order_not_content(tokenizer, corpus):
    def windows(**kwargs):
        dataset = causal_lm_dataset(corpus, tokenizer, sequence_length=3, batch_size=1, end_of_text_id=EOT, **kwargs)
        return [tuple(f["token_ids"].numpy()[0]) for f, _ in dataset]

    ordered, shuffled = windows(shuffle_buffer=0), windows(shuffle_buffer=100, seed=3)
    assert sorted(ordered) == sorted(shuffled)
    assert ordered != shuffled


def test_cache_gives_the_same_windows(tokenizer, corpus):
    def windows(**kwargs):
        dataset = causal_lm_dataset(corpus, tokenizer, sequence_length=4, batch_size=2, end_of_text_id=EOT,
                                    shuffle_buffer=0, **kwargs)
        return [f["token_ids"].numpy().tolist() for f, _ in dataset]

    assert windows(cache=True) == windows()


def test_missing_file_is_named(tokenizer, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        causal_lm_dataset(str(tmp_path / "nope.txt"), tokenizer, 8, 2, EOT)


def test_empty_file_is_named(tokenizer, tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("")
    with pytest.raises(ValueError, match="empty.txt"):
        causal_lm_dataset(str(path), tokenizer, 8, 2, EOT)


def test_corpus_shorter_than_one_window(tokenizer, tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("tiny\n")
    with pytest.raises(ValueError, match=r"short.txt.* 6 tokens.*shorter than one window of .* 65 tokens"):
        causal_lm_dataset(str(path), tokenizer, 64, 2, EOT)


def test_fewer_windows_than_one_batch_is_an_error(tokenizer, tmp_path):
    path = tmp_path / "small.txt"
    path.write_text("hello world, a short text\n")  # 26 bytes and the end-of-text token: 3 windows of 9
    with pytest.raises(ValueError, match=r"small.txt.* 27 tokens.*3 windows of sequence_length \+ 1 = 9 tokens.*"
                       r"batch_size=64 windows \(576 tokens\)"):
        causal_lm_dataset(str(path), tokenizer, 8, 64, EOT)
    # Without drop_remainder the one short batch is kept.
    dataset = causal_lm_dataset(str(path), tokenizer, 8, 64, EOT, drop_remainder=False)
    assert [features["token_ids"].shape[0] for features, _ in dataset] == [3]


def test_the_check_reads_only_the_start_of_a_long_corpus(tokenizer, tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("a line of text\n" * 100_000)  # 196 blocks of 512 lines
    blocks = []

    def counting_tokenizer(lines):
        count = tf.py_function(lambda: blocks.append(1) or 0, [], tf.int32)
        with tf.control_dependencies([count]):
            return tokenizer(lines)

    causal_lm_dataset(str(path), counting_tokenizer, 8, 4, EOT)
    assert 1 <= len(blocks) < 10  # one block holds a batch; tf.data may read a few ahead


def test_works_with_model_fit(tokenizer, corpus):
    import keras
    import tfllm

    model = tfllm.models.GPT("gpt-test", vocabulary_size=257, max_sequence_length=8)
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
    dataset = causal_lm_dataset(corpus, tokenizer, sequence_length=8, batch_size=2, end_of_text_id=EOT)
    losses = model.fit(dataset, epochs=8, verbose=0).history["loss"]
    # Untrained, the model is near uniform over the 257 ids; fit then learns the 50-byte corpus.
    assert abs(losses[0] - np.log(257)) < 0.5
    assert losses[-1] < losses[0] - 1.0, losses
