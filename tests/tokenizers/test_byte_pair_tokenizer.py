import json
import os

import keras
import numpy as np
import pytest
import regex
import tensorflow as tf
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from tests.tokenizers._export import export, op_types, run_in_fresh_process
from tests.tokenizers._text import TRICKY_STRINGS, random_strings
from tfllm.tokenizers import BytePairTokenizer
from tfllm.tokenizers._byte_level import BYTE_SYMBOLS, split_words
from tfllm.tokenizers._tensors import sanitize_utf8

# openai/gpt-2 encoder.py
GPT2_PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
BYTE_VOCABULARY = {symbol: id for id, symbol in enumerate(BYTE_SYMBOLS)}


VOCABULARY_SIZE = 600  # the shipped samples hold enough pairs for it


@pytest.fixture(scope="module")
def tokenizer(sample_lines):
    return BytePairTokenizer.train(iter(sample_lines), VOCABULARY_SIZE)


def hugging_face(tokenizer):
    """The Hugging Face `tokenizers` BPE with the same vocabulary and merges."""
    reference = Tokenizer(
        models.BPE(
            vocab={token: id for id, token in enumerate(tokenizer.get_vocabulary())},
            merges=[tuple(merge.split(" ")) for merge in tokenizer.get_merges()],
        )
    )
    reference.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    reference.decoder = decoders.ByteLevel()
    return reference


# ----------------------------------------------------------------- pre-tokenization


def test_pretokenization_equals_gpt2_regex():
    strings = TRICKY_STRINGS + random_strings(20000, seed=0)
    pieces = tf.function(lambda x: split_words(sanitize_utf8(x)))(tf.constant(strings)).to_list()
    mismatches = [
        (text, [p.decode() for p in ours], GPT2_PATTERN.findall(text))
        for text, ours in zip(strings, pieces)
        if [p.decode() for p in ours] != GPT2_PATTERN.findall(text)
    ]
    assert not mismatches, mismatches[:5]


def test_marker_character_is_dropped_from_input():
    pieces = split_words(tf.constant(["a\ufdd0b  \ufdd0c"])).to_list()[0]
    assert [p.decode() for p in pieces] == GPT2_PATTERN.findall("ab  c")


# ----------------------------------------------------------------- equality with Hugging Face


def assert_equals_hugging_face(tokenizer, texts):
    reference = hugging_face(tokenizer)
    ours = tokenizer(texts).to_list()
    theirs = [encoding.ids for encoding in reference.encode_batch(texts)]
    mismatches = [(text, a, b) for text, a, b in zip(texts, ours, theirs) if a != b]
    assert not mismatches, mismatches[:3]


def test_equals_hugging_face_on_the_samples_and_odd_text(tokenizer, sample_lines):
    assert len(tokenizer.get_merges()) > 300  # enough merges to apply, in many orders
    assert_equals_hugging_face(tokenizer, sample_lines + TRICKY_STRINGS + random_strings(2000, seed=1))


@pytest.mark.slow  # a 1 MB corpus: the samples above run by default
def test_equals_hugging_face_on_tiny_shakespeare(shakespeare_lines):
    tokenizer = BytePairTokenizer.train(iter(shakespeare_lines), 1024)
    assert tokenizer.vocabulary_size() == 1024
    assert_equals_hugging_face(tokenizer, shakespeare_lines + TRICKY_STRINGS + random_strings(2000, seed=1))


def test_overlapping_pairs_merge_left_to_right():
    # "a a a" has the pair "a a" twice, overlapping: GPT-2 (and Hugging Face) merge the first.
    vocabulary = dict(BYTE_VOCABULARY)
    for token in ("aa", "aaa", "aaaa"):
        vocabulary[token] = len(vocabulary)
    tokenizer = BytePairTokenizer(vocabulary, ["a a", "aa a", "aa aa"])
    reference = hugging_face(tokenizer)
    texts = ["a" * n for n in range(1, 20)] + ["aXa" * 3, "baaab aaaaa"]
    assert tokenizer(texts).to_list() == [e.ids for e in reference.encode_batch(texts)]
    # a a a a a -> (rank 0, both pairs) aa aa a -> (rank 1 beats rank 2) aa aaa
    assert tokenizer("aaaaa").numpy().tolist() == [vocabulary["aa"], vocabulary["aaa"]]


# ----------------------------------------------------------------- round trips and bad bytes


def test_round_trip(tokenizer):
    texts = TRICKY_STRINGS + random_strings(500, seed=2) + ["😀" * 2000, "supercalifragilistic" * 500]
    decoded = tokenizer.detokenize(tokenizer(texts)).numpy()
    assert [text.decode("utf-8") for text in decoded] == texts
    for text in TRICKY_STRINGS[:8]:
        assert tokenizer.detokenize(tokenizer(text)).numpy().decode("utf-8") == text


def test_pure_byte_level_with_no_merges():
    tokenizer = BytePairTokenizer(BYTE_VOCABULARY, [])
    text = "héllo 😀"
    ids = tokenizer(text).numpy().tolist()
    assert ids == [BYTE_VOCABULARY[BYTE_SYMBOLS[b]] for b in text.encode("utf-8")]
    assert tokenizer.detokenize(ids).numpy().decode("utf-8") == text
    assert tokenizer.special_tokens == []


def test_invalid_utf8_input_is_read_as_replacement_characters(tokenizer):
    bad = [b"\xff\xfe", b"caf\xc3", b"a\x80b", b"\xe2\x82 euro", b"\xed\xa0\x80 surrogate", b"ok"]
    ids = tokenizer(tf.constant(bad))
    repaired = [text.decode("utf-8", errors="replace") for text in bad]
    # Each invalid sequence is one U+FFFD for TensorFlow; Python may count more: compare sanitized.
    expected = tokenizer(sanitize_utf8(tf.constant(bad)))
    assert ids.to_list() == expected.to_list()
    decoded = tokenizer.detokenize(ids).numpy()
    for text, reference in zip(decoded, repaired):
        assert text.decode("utf-8").replace("\ufffd", "") == reference.replace("\ufffd", "")


def test_detokenize_always_returns_valid_utf8(tokenizer):
    rng = np.random.default_rng(0)
    continuation_byte = tokenizer.token_to_id(BYTE_SYMBOLS[0x80])
    lead_byte = tokenizer.token_to_id(BYTE_SYMBOLS[0xE2])
    sequences = [[continuation_byte], [lead_byte], [lead_byte, continuation_byte], [0xFF]]
    sequences += [rng.integers(0, tokenizer.vocabulary_size(), rng.integers(0, 30)).tolist() for _ in range(500)]
    for text in tokenizer.detokenize(tf.ragged.constant(sequences, dtype=tf.int32)).numpy():
        text.decode("utf-8")  # strict: raises on invalid UTF-8
    assert tokenizer.detokenize([continuation_byte]).numpy() == "\ufffd".encode("utf-8")


# ----------------------------------------------------------------- special tokens


def test_special_tokens_have_ids_but_text_never_produces_them(tokenizer):
    assert tokenizer.special_tokens == ["<|endoftext|>"]
    assert tokenizer.end_of_text_id == tokenizer.token_to_id("<|endoftext|>") == 0
    assert tokenizer.special_token_ids == [0]
    ids = tokenizer("<|endoftext|>a<|endoftext|>").numpy().tolist()
    assert tokenizer.end_of_text_id not in ids
    assert tokenizer.detokenize(ids).numpy() == b"<|endoftext|>a<|endoftext|>"
    # Added by id (as the data pipeline does), it decodes to its text.
    assert tokenizer.detokenize([0, *tokenizer("hi").numpy()]).numpy() == b"<|endoftext|>hi"


def test_special_tokens_are_inferred_from_a_gpt2_style_vocabulary():
    vocabulary = {**BYTE_VOCABULARY, "ab": 256, "<|endoftext|>": 257}
    tokenizer = BytePairTokenizer(vocabulary, ["a b"])
    assert tokenizer.special_tokens == ["<|endoftext|>"]
    assert tokenizer.end_of_text_id == 257


# ----------------------------------------------------------------- inputs and outputs


def test_call_and_detokenize_shapes(tokenizer):
    batch = tokenizer(["Hello there", "", "friend"])
    assert isinstance(batch, tf.RaggedTensor) and batch.dtype == tf.int32 and batch.shape.rank == 2
    assert batch.row_lengths().numpy()[1] == 0
    single = tokenizer("Hello there")
    assert isinstance(single, tf.Tensor) and single.shape.rank == 1 and single.dtype == tf.int32
    assert single.numpy().tolist() == batch[0].numpy().tolist()
    assert tokenizer(np.array(["Hello there"])).to_list() == batch[:1].to_list()
    ids = single.numpy()
    expected = b"Hello there"
    assert tokenizer.detokenize(ids).numpy() == expected  # NumPy, one sequence -> scalar
    assert tokenizer.detokenize(ids.tolist()).numpy() == expected  # list
    assert tokenizer.detokenize(batch).numpy().tolist() == [expected, b"", b"friend"]  # ragged
    first_token = tokenizer.detokenize(ids[:1]).numpy()
    assert first_token and expected.startswith(first_token) and first_token != expected
    ragged_lists = tokenizer.detokenize([ids.tolist(), [], ids[:1].tolist()])  # ragged lists
    assert ragged_lists.numpy().tolist() == [expected, b"", first_token]
    dense = tokenizer.detokenize(np.stack([ids, ids]))  # dense [batch, length]
    assert dense.numpy().tolist() == [expected, expected]


def test_bad_call_inputs_raise(tokenizer):
    with pytest.raises(ValueError, match="strings"):
        tokenizer(tf.constant([1, 2]))
    with pytest.raises(ValueError, match="shape"):
        tokenizer(tf.constant([["a"]]))
    with pytest.raises(ValueError, match=r"Received the id 5000"):
        tokenizer.detokenize([1, 5000])
    with pytest.raises(ValueError, match=r"Received the id -1"):
        tokenizer.detokenize([[1], [-1]])
    with pytest.raises(ValueError, match="integers"):
        tokenizer.detokenize(tf.constant([1.5]))


def test_vocabulary_accessors(tokenizer):
    vocabulary = tokenizer.get_vocabulary()
    assert tokenizer.vocabulary_size() == len(vocabulary) == VOCABULARY_SIZE
    assert tokenizer.id_to_token(tokenizer.token_to_id("Ġthe")) == "Ġthe"
    assert set(BYTE_SYMBOLS) <= set(vocabulary)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tokenizer.token_to_id("no such token")
    with pytest.raises(ValueError, match="id"):
        tokenizer.id_to_token(VOCABULARY_SIZE)


# ----------------------------------------------------------------- in tf.data, tf.function, SavedModel


def test_tf_data_map_and_tf_function_equal_eager(tokenizer):
    texts = ["First Citizen:", "", "Before we proceed any further, hear me speak. 😀", "x" * 100]
    eager = tokenizer(texts).to_list()
    batched = tf.data.Dataset.from_tensor_slices(texts).batch(2).map(tokenizer)
    assert [row for ids in batched for row in ids.to_list()] == eager
    unbatched = tf.data.Dataset.from_tensor_slices(texts).map(tokenizer)
    assert [ids.numpy().tolist() for ids in unbatched] == eager
    round_trip = tf.function(lambda x: tokenizer.detokenize(tokenizer(x)))
    assert [t.decode() for t in round_trip(tf.constant(texts)).numpy()] == texts


def test_memory_stays_flat(tokenizer):
    module = tf.Module()
    module.tokenizer = tokenizer

    def state():
        objects = tf.train.TrackableView(module).descendants()
        tables = [obj for obj in objects if "HashTable" in type(obj).__name__]
        return len(objects), [type(table).__name__ for table in tables], [int(table.size()) for table in tables]

    before = state()
    assert before[1] == ["StaticHashTable"], "only immutable lookup tables"
    new_words = random_strings(3000, seed=3)
    tokenizer(new_words)
    tf.data.Dataset.from_tensor_slices(new_words).batch(100).map(tokenizer).reduce(0, lambda n, _: n + 1)
    assert state() == before


def test_saved_model_runs_in_fresh_process_without_pyfunc(tokenizer, tmp_path):
    path = export(tokenizer, str(tmp_path / "bpe"))
    ops = op_types(path)
    assert not {op for op in ops if "PyFunc" in op}
    assert not {op for op in ops if "MutableHashTable" in op or op.startswith("LookupTableInsert")}
    assert not {op for op in ops if op.startswith(("TFText", "RegexSplit"))}, "core TensorFlow ops only"
    texts = ["First Citizen:\n", "", "emoji 😀 and CJK 日本語", "<|endoftext|>", "  spaces   ", "x" * 500]
    result = run_in_fresh_process(path, texts, str(tmp_path))
    assert result["modules"] == []
    assert result["ids"] == tokenizer(texts).to_list()
    assert result["text"] == texts


# ----------------------------------------------------------------- files and Keras saving


def test_save_and_load(tokenizer, tmp_path):
    tokenizer.save(str(tmp_path))
    with open(tmp_path / "vocab.json", encoding="utf-8") as file:
        assert json.load(file) == {token: id for id, token in enumerate(tokenizer.get_vocabulary())}
    lines = (tmp_path / "merges.txt").read_text(encoding="utf-8").split("\n")
    assert lines[0] == "#version: 0.2" and lines[1:-1] == tokenizer.get_merges()
    loaded = BytePairTokenizer.load(str(tmp_path))
    assert loaded.get_vocabulary() == tokenizer.get_vocabulary()
    assert loaded.special_tokens == tokenizer.special_tokens
    texts = ["Before we proceed any further", "😀 日本"]
    assert loaded(texts).to_list() == tokenizer(texts).to_list()
    # The files are Hugging Face's: its BPE reads them and agrees.
    reference = Tokenizer(models.BPE.from_file(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt")))
    reference.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    assert [e.ids for e in reference.encode_batch(texts)] == tokenizer(texts).to_list()
    # Without tfllm's own file (a GPT-2 directory), special tokens are inferred.
    os.remove(tmp_path / "tfllm_tokenizer.json")
    assert BytePairTokenizer.load(str(tmp_path)).special_tokens == ["<|endoftext|>"]


def test_keras_file_round_trip(tokenizer, tmp_path):
    config = tokenizer.get_config()
    assert config["vocabulary"] is None and config["special_tokens"] == ["<|endoftext|>"]
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, tokenizer(inputs))
    path = str(tmp_path / "tokenizer.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    texts = tf.constant(["Hello world", "日本"])
    assert reloaded(texts).to_list() == tokenizer(texts).to_list()
    assert type(reloaded.layers[-1]) is BytePairTokenizer


# ----------------------------------------------------------------- bad vocabularies and corpora


def test_constructor_validates_vocabulary_and_merges():
    missing_byte = dict(BYTE_VOCABULARY)
    del missing_byte["Ġ"]
    missing_byte["x" * 3] = missing_byte.pop(BYTE_SYMBOLS[255])
    with pytest.raises(ValueError, match=r"'Ġ' \(byte 0x20\)"):
        BytePairTokenizer({token: id for id, token in enumerate(missing_byte)}, [])
    with pytest.raises(ValueError, match="'ab'"):
        BytePairTokenizer(BYTE_VOCABULARY, ["a b"])
    with pytest.raises(ValueError, match="'zz'"):
        BytePairTokenizer({**BYTE_VOCABULARY, "ab": 256}, ["a b", "zz b"])
    with pytest.raises(ValueError, match="left right"):
        BytePairTokenizer({**BYTE_VOCABULARY, "ab": 256}, ["ab"])
    with pytest.raises(ValueError, match="twice"):
        BytePairTokenizer({**BYTE_VOCABULARY, "ab": 256}, ["a b", "a b"])
    with pytest.raises(ValueError, match="ids"):
        BytePairTokenizer({**BYTE_VOCABULARY, "ab": 300}, ["a b"])
    with pytest.raises(ValueError, match="'<pad>' is not in the vocabulary"):
        BytePairTokenizer(BYTE_VOCABULARY, [], special_tokens=["<pad>"])
    with pytest.raises(ValueError, match="merge result"):
        BytePairTokenizer({**BYTE_VOCABULARY, "ab": 256}, ["a b"], special_tokens=["ab"])
    with pytest.raises(ValueError, match="no vocabulary"):
        BytePairTokenizer()(["text"])
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        BytePairTokenizer.load("/no/such/directory")


def test_train_from_texts_equals_train_from_files(tmp_path):
    lines = ["the cat sat on the mat\n", "the dog sat on the log\n", "\n", "cats and dogs\n"] * 5
    path = tmp_path / "corpus.txt"
    path.write_text("".join(lines), encoding="utf-8")
    from_file = BytePairTokenizer.train(str(path), 300)
    from_texts = BytePairTokenizer.train(iter(lines), 300)
    assert from_file.get_merges() == from_texts.get_merges() != []
    assert from_file.get_vocabulary()[0] == "<|endoftext|>"


def test_train_rejects_bad_corpora(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        BytePairTokenizer.train(["", "  \n"], 300)
    with pytest.raises(ValueError, match="empty"):
        BytePairTokenizer.train([], 300)
    empty_file = tmp_path / "empty.txt"
    empty_file.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="empty.txt"):
        BytePairTokenizer.train([str(empty_file)], 300)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        BytePairTokenizer.train([str(empty_file), str(tmp_path / "missing.txt")], 300)
    with pytest.raises(ValueError, match="vocabulary_size"):
        BytePairTokenizer.train(["some text"], 100)
