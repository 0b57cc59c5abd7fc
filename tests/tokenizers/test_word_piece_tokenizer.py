import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from tests.tokenizers._export import export, op_types, run_in_fresh_process
from tfllm.tokenizers import WordPieceTokenizer

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# The ops tensorflow-text 2.21 registers, and those TF Serving up to 2.19.1 lacks (SERVING.md).
TF_TEXT_OPS = {
    "CaseFoldUTF8", "ConstrainedSequence", "FastBertNormalize", "FastWordpieceTokenizeWithOffsets",
    "FindSourceOffsets", "MaxSpanningTree", "NormalizeUTF8", "NormalizeUTF8WithOffsetsMap", "PhraseTokenize",
    "RegexSplitWithOffsets", "RougeL", "SentenceFragments", "SentenceFragmentsV2", "SentencepieceDetokenizeOp",
    "SentencepieceIdToStringOp", "SentencepieceOp", "SentencepieceStringToIdOp", "SentencepieceTokenizeOp",
    "SentencepieceTokenizeWithOffsetsOp", "SentencepieceVocabSizeOp", "SplitMergeTokenizeWithOffsets",
    "TokenizerFromLogits", "UnicodeScriptTokenizeWithOffsets", "WhitespaceTokenizeWithOffsets",
    "WordpieceTokenizeWithOffsets", "TFText>BoiseTagsToOffsets", "TFText>ByteSplitByOffsets",
    "TFText>ByteSplitWithOffsets", "TFText>FastSentencepieceDetokenize", "TFText>FastSentencepieceTokenize",
    "TFText>FastWordpieceDetokenize", "TFText>NgramsStringJoin", "TFText>OffsetsToBoiseTags",
    "TFText>PhraseDetokenize", "TFText>RoundRobinGenerateMasks", "TFText>RoundRobinTrim", "TFText>Utf8Binarize",
    "TFText>WhitespaceTokenizeWithOffsetsV2",
}  # fmt: skip
MISSING_FROM_OLDER_SERVERS = {"TFText>Utf8Binarize", "TFText>RoundRobinTrim", "TFText>RoundRobinGenerateMasks"}
TOY_VOCABULARY = [*SPECIAL, "the", "qu", "##ick", "br", "##own", "fox", ".", "cafe", "Café", "Caf", "##é"]


@pytest.fixture(scope="module")
def sst2_tokenizer(sst2_sentences):
    return WordPieceTokenizer.train(sst2_sentences[0], 8192)


def hugging_face_bert(tokenizer, lowercase=True, strip_accents=True):
    """Hugging Face's BERT tokenizer pipeline with the same vocabulary."""
    vocabulary = {token: id for id, token in enumerate(tokenizer.get_vocabulary())}
    reference = Tokenizer(models.WordPiece(vocabulary, unk_token="[UNK]"))
    reference.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=strip_accents)
    reference.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return reference


# ----------------------------------------------------------------- training


def test_trained_vocabulary_starts_with_special_tokens(sst2_tokenizer):
    vocabulary = sst2_tokenizer.get_vocabulary()
    assert sst2_tokenizer.vocabulary_size() == len(vocabulary) == 8192
    assert vocabulary[:5] == SPECIAL
    assert (
        sst2_tokenizer.pad_token_id,
        sst2_tokenizer.unknown_token_id,
        sst2_tokenizer.cls_token_id,
        sst2_tokenizer.sep_token_id,
        sst2_tokenizer.mask_token_id,
    ) == (0, 1, 2, 3, 4)


def test_equals_hugging_face_bert_pipeline_on_sst2(sst2_tokenizer, sst2_sentences):
    # The in-graph tokenizer with the trained vocabulary splits SST-2 exactly as Hugging Face's
    # BertNormalizer + BertPreTokenizer + WordPiece do with it.
    texts = sst2_sentences[1] + ["Caf\u00e9 na\u00efve \u00c9COLE", "a\u00a0b", "tab\tnew\nline", "don't stop"]
    reference = hugging_face_bert(sst2_tokenizer)
    ours = sst2_tokenizer(texts).to_list()
    theirs = [encoding.ids for encoding in reference.encode_batch(texts)]
    mismatches = [(text, a, b) for text, a, b in zip(texts, ours, theirs) if a != b]
    assert not mismatches, mismatches[:3]


def test_training_is_deterministic(sst2_sentences):
    # Hugging Face's WordPiece trainer alone is not (huggingface/tokenizers#1794).
    texts = sst2_sentences[0][:20000]
    vocabularies = [WordPieceTokenizer.train(texts, 3000).get_vocabulary() for _ in range(3)]
    assert vocabularies[0] == vocabularies[1] == vocabularies[2]


def test_train_from_files_and_cased(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("Café au lait. Le Café!\n" * 20 + "Naïve Cafés\n" * 20, encoding="utf-8")
    cased = WordPieceTokenizer.train([str(path)], 80, lowercase=False, strip_accents=False)
    assert not cased.lowercase and not cased.strip_accents
    tokens = [cased.id_to_token(i) for i in cased("Café").numpy()]
    assert "".join(token.removeprefix("##") for token in tokens) == "Café"
    uncased = WordPieceTokenizer.train(str(path), 80)
    tokens = [uncased.id_to_token(i) for i in uncased("Café").numpy()]
    assert "".join(token.removeprefix("##") for token in tokens) == "cafe"


def test_train_rejects_bad_corpora(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        WordPieceTokenizer.train(["", " "], 100)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        WordPieceTokenizer.train([str(tmp_path / "missing.txt")], 100)
    empty_file = tmp_path / "empty.txt"
    empty_file.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty.txt"):
        WordPieceTokenizer.train(str(empty_file), 100)
    with pytest.raises(ValueError, match="vocabulary_size"):
        WordPieceTokenizer.train(["text"], 3)


# ----------------------------------------------------------------- tokenizing


@pytest.mark.parametrize(
    "lowercase, strip_accents, expected",
    [
        (True, True, ["cafe"]),
        (True, False, ["[UNK]"]),  # "café": not in the vocabulary
        (False, False, ["Café"]),
        (False, True, ["Caf", "##e"]),  # "Cafe": no "##e" in the vocabulary -> greedy fails
    ],
)
def test_lowercase_and_strip_accents_options(lowercase, strip_accents, expected):
    vocabulary = TOY_VOCABULARY if expected != ["Caf", "##e"] else [*TOY_VOCABULARY, "##e"]
    tokenizer = WordPieceTokenizer(vocabulary, lowercase=lowercase, strip_accents=strip_accents)
    assert [tokenizer.id_to_token(i) for i in tokenizer("Café").numpy()] == expected


def test_round_trip_of_lower_case_text_and_unknown_characters(sst2_tokenizer):
    text = "the movie is a charming and often affecting journey"
    assert sst2_tokenizer.detokenize(sst2_tokenizer(text)).numpy().decode() == text
    ids = sst2_tokenizer("The Movie, isn't it?").numpy()
    assert sst2_tokenizer.detokenize(ids).numpy() == b"the movie , isn ' t it ?"
    ids = sst2_tokenizer("good ☃ 日本").numpy().tolist()
    assert ids[1:] == [sst2_tokenizer.unknown_token_id] * 3


def test_special_tokens_are_never_produced_from_text(sst2_tokenizer):
    ids = sst2_tokenizer("[CLS] hello [SEP] [MASK] [PAD]").numpy().tolist()
    for name in ("cls", "sep", "mask", "pad"):
        assert getattr(sst2_tokenizer, f"{name}_token_id") not in ids


def test_eager_calls_return_tensors_like_graph_calls(sst2_tokenizer):
    texts = ["A gorgeous, witty film.", "", "Not really."]
    eager = sst2_tokenizer(texts)
    assert isinstance(eager, tf.RaggedTensor) and eager.dtype == tf.int32
    single = sst2_tokenizer(texts[0])
    assert isinstance(single, tf.Tensor) and single.shape.rank == 1
    assert single.numpy().tolist() == eager[0].numpy().tolist()
    mapped = tf.data.Dataset.from_tensor_slices(texts).batch(2).map(sst2_tokenizer)
    assert [row for batch in mapped for row in batch.to_list()] == eager.to_list()
    traced = tf.function(sst2_tokenizer)(tf.constant(texts))
    assert traced.to_list() == eager.to_list()
    text = sst2_tokenizer.detokenize(eager)
    assert isinstance(text, tf.Tensor) and text.shape == (3,)
    assert sst2_tokenizer.detokenize(single.numpy()).shape == ()
    assert sst2_tokenizer.detokenize([[5, 6], [7]]).shape == (2,)


def test_bad_inputs(sst2_tokenizer):
    ids = sst2_tokenizer(tf.constant([b"ok \xff\xfe", b"caf\xc3"])).to_list()
    # Each invalid sequence reads as U+FFFD, which no vocabulary word spells.
    assert ids[0] == [*sst2_tokenizer("ok").numpy(), sst2_tokenizer.unknown_token_id]
    assert ids[1] == [sst2_tokenizer.unknown_token_id]
    with pytest.raises(ValueError, match="strings"):
        sst2_tokenizer([1, 2])
    with pytest.raises(ValueError, match="Received the id 9000"):
        sst2_tokenizer.detokenize([1, 9000])


# ----------------------------------------------------------------- vocabulary files and checks


def test_constructor_validates_the_vocabulary():
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the"])
    with pytest.raises(ValueError, match="'the' twice"):
        WordPieceTokenizer([*SPECIAL, "the", "the"])
    with pytest.raises(ValueError, match="non-empty"):
        WordPieceTokenizer([*SPECIAL, ""])


def test_save_and_load(sst2_tokenizer, tmp_path):
    sst2_tokenizer.save(str(tmp_path))
    lines = (tmp_path / "vocab.txt").read_text(encoding="utf-8").split("\n")
    assert lines[:-1] == sst2_tokenizer.get_vocabulary() and lines[-1] == ""
    loaded = WordPieceTokenizer.load(str(tmp_path))
    assert loaded.get_vocabulary() == sst2_tokenizer.get_vocabulary()
    assert loaded("Hello, World!").numpy().tolist() == sst2_tokenizer("Hello, World!").numpy().tolist()
    from_file = WordPieceTokenizer(str(tmp_path / "vocab.txt"))
    assert from_file.get_vocabulary() == sst2_tokenizer.get_vocabulary()


def test_load_keeps_case_settings_and_reads_hugging_face_config(tmp_path):
    cased = WordPieceTokenizer(TOY_VOCABULARY, lowercase=False, strip_accents=False)
    cased.save(str(tmp_path / "ours"))
    loaded = WordPieceTokenizer.load(str(tmp_path / "ours"))
    assert (loaded.lowercase, loaded.strip_accents) == (False, False)
    # A Hugging Face BERT directory: vocab.txt plus tokenizer_config.json.
    hugging_face = tmp_path / "bert-base-cased"
    hugging_face.mkdir()
    (hugging_face / "vocab.txt").write_text("\n".join(TOY_VOCABULARY) + "\n", encoding="utf-8")
    (hugging_face / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    loaded = WordPieceTokenizer.load(str(hugging_face))
    assert (loaded.lowercase, loaded.strip_accents) == (False, False)
    assert WordPieceTokenizer.load(str(hugging_face), lowercase=True).strip_accents
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        WordPieceTokenizer.load(str(tmp_path / "nothing"))


def test_keras_file_round_trip(tmp_path):
    tokenizer = WordPieceTokenizer(TOY_VOCABULARY, lowercase=False, strip_accents=False, split_on_cjk=False)
    config = tokenizer.get_config()
    assert config["split_on_cjk"] is False and config["lowercase"] is False
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, tokenizer(inputs))
    path = str(tmp_path / "tokenizer.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    layer = reloaded.layers[-1]
    assert type(layer) is WordPieceTokenizer and layer.get_config() == config
    texts = tf.constant(["Café the fox.", "brown"])
    assert reloaded(texts).to_list() == tokenizer(texts).to_list()


# ----------------------------------------------------------------- serving


def test_saved_model_ops_are_served_and_run_in_fresh_process(sst2_tokenizer, tmp_path):
    path = export(sst2_tokenizer, str(tmp_path / "wordpiece"))
    ops = op_types(path)
    assert not {op for op in ops if "PyFunc" in op}
    assert ops & TF_TEXT_OPS == {
        "NormalizeUTF8",
        "CaseFoldUTF8",
        "RegexSplitWithOffsets",
        "FastWordpieceTokenizeWithOffsets",
        "TFText>FastWordpieceDetokenize",
    }
    assert not ops & MISSING_FROM_OLDER_SERVERS
    texts = ["A gorgeous, witty film.", "", "Café ☃ \u00a0 [MASK]"]
    result = run_in_fresh_process(path, texts, str(tmp_path))
    assert result["modules"] == []
    assert result["ids"] == sst2_tokenizer(texts).to_list()
    assert result["text"] == [t.decode() for t in sst2_tokenizer.detokenize(sst2_tokenizer(texts)).numpy()]


def test_vocabulary_sizes_are_plain_ints(sst2_tokenizer):
    assert isinstance(sst2_tokenizer.vocabulary_size(), int)
    assert isinstance(sst2_tokenizer.token_to_id("the"), (int, np.integer))
