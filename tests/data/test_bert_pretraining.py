import pytest

from tfllm.data import bert_pretraining_dataset
from tfllm.tokenizers import WordPieceTokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer.train(["the cat sat on the mat.", "a dog ran to the park."] * 5, 60)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_one_sentence_documents_are_an_error(tokenizer, tmp_path):
    # No document has a second sentence: there is no pair to train on.
    path = write(tmp_path / "single.txt", "the cat sat.\n\na dog ran.\n\nthe mat.\n")
    with pytest.raises(ValueError, match=r"single.txt.* 0 sentence pairs .* 3 sentences.*batch_size=2"):
        bert_pretraining_dataset(path, tokenizer, sequence_length=16, batch_size=2)
    with pytest.raises(ValueError, match=r"single.txt.* 0 sentence pairs"):
        bert_pretraining_dataset(path, tokenizer, sequence_length=16, batch_size=2, drop_remainder=False)


def test_fewer_pairs_than_one_batch_is_an_error(tokenizer, tmp_path):
    path = write(tmp_path / "short.txt", "the cat sat.\na dog ran.\nthe mat.\n\n\n")
    with pytest.raises(ValueError, match=r"short.txt.* 2 sentence pairs .* 3 sentences.*batch_size=4"):
        bert_pretraining_dataset(path, tokenizer, sequence_length=16, batch_size=4)
    dataset = bert_pretraining_dataset(path, tokenizer, sequence_length=16, batch_size=4, drop_remainder=False)
    assert [features["token_ids"].shape[0] for features, _, _ in dataset] == [2]


def test_enough_pairs_make_full_batches(tokenizer, tmp_path):
    path = write(tmp_path / "corpus.txt", "the cat sat.\na dog ran.\nthe mat.\n\nthe park.\nthe dog.\n")
    dataset = bert_pretraining_dataset(path, tokenizer, sequence_length=16, batch_size=3, seed=1)
    assert [features["token_ids"].shape for features, _, _ in dataset] == [(3, 16)]
