"""Attention maps against the block's own projections; integrated gradients' completeness; pictures."""

from html import escape

import numpy as np
import pytest
from keras import ops

import tfllm
from tests.data_files import review_sentences
from tfllm.inspect import attention, attribution_html, integrated_gradients, plot_attention, plot_attribution
from tfllm.tokenizers import BytePairTokenizer, WordPieceTokenizer

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="tfllm.inspect runs on TensorFlow")


@pytest.fixture(scope="module")
def classifier():
    tokenizer = WordPieceTokenizer.train(review_sentences(), 300, min_frequency=1)
    keras.utils.set_random_seed(5)
    backbone = tfllm.models.BERT("bert-test", vocabulary_size=tokenizer.vocabulary_size())
    model = tfllm.models.BERTClassifier(backbone, num_classes=2)
    # Random weights far from zero, so the attention and the attributions are far from uniform.
    rng = np.random.default_rng(0)
    for variable in model.trainable_variables:
        variable.assign(rng.normal(0, 1.0, variable.shape).astype("float32"))
    return model, tokenizer


def numpy_attention(block, x, mask):
    """One block's attention probabilities from its own QKV projection, in NumPy."""
    qkv = ops.convert_to_numpy(block.qkv_dense(block.attention_layer_norm(x) if block.normalize_first else x))[0]
    hidden = qkv.shape[-1] // 3
    heads, head_dim = block.num_heads, hidden // block.num_heads
    query = qkv[:, :hidden].reshape(-1, heads, head_dim).transpose(1, 0, 2)
    key = qkv[:, hidden : 2 * hidden].reshape(-1, heads, head_dim).transpose(1, 0, 2)
    scores = query @ key.transpose(0, 2, 1) / np.sqrt(head_dim)
    scores = np.where(mask, scores, -np.inf)
    return np.exp(scores - scores.max(-1, keepdims=True)) / np.exp(scores - scores.max(-1, keepdims=True)).sum(-1, keepdims=True)


def test_bert_attention_equals_a_numpy_softmax_of_the_blocks_projections(classifier):
    model, tokenizer = classifier
    maps = attention(model, tokenizer, "the little cafe was charming")
    backbone = model.backbone
    assert maps.tokens[0] == "[CLS]" and maps.tokens[-1] == "[SEP]" and not maps.truncated
    assert maps.weights.shape == (2, 2, len(maps.tokens), len(maps.tokens))
    ids = np.array([[tokenizer.token_to_id(t) for t in maps.tokens]], "int32")
    features = {"token_ids": ids, "segment_ids": 0 * ids, "padding_mask": np.ones_like(ids)}
    first_block_input = backbone.embeddings_layer_norm(
        backbone.token_embedding(ids) + backbone.position_embedding(backbone.token_embedding(ids))
        + backbone.segment_embedding(0 * ids)
    )
    expected = numpy_attention(backbone.transformer_blocks[0], first_block_input, np.ones((1, 1), bool))
    np.testing.assert_allclose(maps.weights[0], expected, atol=1e-5)
    second_input = backbone.transformer_blocks[0](first_block_input, padding_mask=features["padding_mask"])
    expected = numpy_attention(backbone.transformer_blocks[1], second_input, np.ones((1, 1), bool))
    np.testing.assert_allclose(maps.weights[1], expected, atol=1e-5)
    assert maps.weights[0].std() > 0.05  # far from uniform: the comparison means something


def test_gpt_attention_is_causal_and_a_long_text_is_cut_and_said(tmp_path):
    tokenizer = BytePairTokenizer.train([tfllm.data.samples.STORIES], 400)
    model = tfllm.models.GPT("gpt-test", vocabulary_size=tokenizer.vocabulary_size())
    with open(tfllm.data.samples.STORIES, encoding="utf-8") as file:
        text = file.read()
    maps = attention(model, tokenizer, text)
    assert maps.truncated and len(maps.tokens) == 64 and maps.total_tokens > 64
    assert np.triu(maps.weights, k=1).max() == 0.0  # no query sees a later key
    np.testing.assert_allclose(maps.weights.sum(-1), 1.0, atol=1e-5)
    path = plot_attention(maps, -1, str(tmp_path / "gpt.png"))
    assert _png_size(path)[0] >= 64 * 0.14 * 100  # 64 tokens: at least 0.14 inch (14 px) a token


def test_integrated_gradients_are_complete(classifier):
    model, tokenizer = classifier
    result = integrated_gradients(model, tokenizer, "the coffee was cold and the service slow", labels=["neg", "pos"])
    difference = result.logit - result.baseline_logit
    assert abs(difference) > 0.1
    assert result.completeness_error < 0.02 * abs(difference)
    assert float(result.scores.sum()) == pytest.approx(difference, rel=0.02)
    assert len(result.scores) == len(result.tokens) and result.label in ("neg", "pos")
    # Another target explains another logit.
    other = integrated_gradients(model, tokenizer, "the coffee was cold and the service slow", target=1 - result.target)
    assert not np.allclose(other.scores, result.scores)


def test_pictures_and_html_differ_with_the_input(classifier, tmp_path):
    model, tokenizer = classifier
    files = []
    for index, text in enumerate(["a charming and funny film", "the worst meal of my life, cold and bland"]):
        result = integrated_gradients(model, tokenizer, text, labels=["neg", "pos"], steps=16)
        png, page = plot_attribution(result, str(tmp_path / f"a{index}.png")), attribution_html(result, str(tmp_path / f"a{index}.html"))
        maps = attention(model, tokenizer, text)
        heat = plot_attention(maps, 0, str(tmp_path / f"h{index}.png"))
        files.append((png, page, heat))
        html = open(page, encoding="utf-8").read()
        assert html.startswith("<!DOCTYPE html>") and all(escape(token) in html for token in result.tokens)
        assert html.count("<span") == len(result.tokens)
        width, height = _png_size(png)
        assert width >= 400 and height >= 300 and os.path.getsize(png) > 5_000
    for first, second in zip(*files):
        assert open(first, "rb").read() != open(second, "rb").read()


import os  # noqa: E402
import struct  # noqa: E402


def _png_size(path):
    with open(path, "rb") as file:
        header = file.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])
