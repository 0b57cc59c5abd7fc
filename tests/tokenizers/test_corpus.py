from tfllm.tokenizers._corpus import Corpus


def test_files_are_read_as_written_with_each_invalid_sequence_as_a_replacement_character(tmp_path):
    # The documented reading of training files: line ends kept, a byte-order mark kept as text,
    # bytes that are not UTF-8 read as U+FFFD (as the tokenizers read them).
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"\xef\xbb\xbfcaf\xc3\r\nsecond\rthird\n\xffend")
    texts = [text for batch in Corpus(str(path)) for text in batch]
    assert texts == ["\ufeffcaf\ufffd\r\n", "second\r", "third\n", "\ufffdend"]


def test_bytes_items_are_decoded_the_same_way():
    texts = [text for batch in Corpus([b"caf\xc3", "ok"]) for text in batch]
    assert texts == ["caf\ufffd", "ok"]
