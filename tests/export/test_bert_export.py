"""BERT exports: classifier probabilities equal the Keras model's; fill-mask; embeddings."""

import numpy as np
import pytest
import tensorflow as tf

import tfllm
from tests.export.conftest import LABELS, SEQUENCE_LENGTH, run_fresh, tiny_bert
from tfllm.data import BERTInputPacker
from tfllm.export import MaskedLMServer

TEXTS = ["a gripping , funny film", "dull and lifeless", "", "😀 \u0007"]
PAIRS = ["really", "", "x", "y"]


def softmax(logits):
    logits = np.asarray(logits, "float64")
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)


def mean_pooled(backbone, features):
    """The mean of the BERT's final hidden states over the real tokens, in NumPy."""
    hidden = np.asarray(backbone.predict_on_batch(features)["sequence_output"], "float64")
    mask = np.asarray(features["padding_mask"], "float64")[:, :, None]
    return (hidden * mask).sum(1) / mask.sum(1)


def test_classifier_in_a_fresh_process_equals_the_keras_model(classifier_bundle, tmp_path):
    model, backbone, tokenizer, path = classifier_bundle
    long_text = "so good " * 100
    odd_texts, odd_pairs = [long_text.encode(), b"\xff\x00\xc3"], [long_text.encode(), b""]
    requests = [
        ["serving_default", {"text": TEXTS, "text_pair": PAIRS}],
        ["serving_default", {"text": [long_text, {"bytes_hex": odd_texts[1].hex()}], "text_pair": [long_text, ""]}],
        ["serving_default", {"text": [], "text_pair": []}],
        ["embed", {"text": TEXTS}],
    ]
    answers, modules = run_fresh(path, requests, tmp_path)
    assert not [name for name in modules if name.split(".")[0] in ("tfllm", "keras_hub")]

    pack = BERTInputPacker(tokenizer, SEQUENCE_LENGTH)
    expected = softmax(model.predict_on_batch(pack(tf.constant(TEXTS), tf.constant(PAIRS))))
    np.testing.assert_allclose(answers[0]["probabilities"], expected, atol=1e-6)
    assert answers[0]["label"] == [LABELS[i] for i in expected.argmax(-1)]
    # Texts beyond the sequence length are truncated, invalid UTF-8 read as U+FFFD, as the packer does.
    expected = softmax(model.predict_on_batch(pack(tf.constant(odd_texts), tf.constant(odd_pairs))))
    np.testing.assert_allclose(answers[1]["probabilities"], expected, atol=1e-6)
    assert answers[1]["label"] == [LABELS[i] for i in expected.argmax(-1)]
    assert answers[2] == {"probabilities": [], "label": []}

    np.testing.assert_allclose(answers[3]["embedding"], mean_pooled(backbone, pack(tf.constant(TEXTS))), atol=1e-5)


def test_mean_pooled_classifier_exports_the_same_probabilities(wordpiece, tmp_path):
    model = tfllm.models.BERTClassifier(tiny_bert(wordpiece), num_classes=len(LABELS), pooling="mean")
    path = tfllm.export.export_classifier(model, wordpiece, LABELS, tmp_path / "mean", sequence_length=SEQUENCE_LENGTH)
    served = tf.saved_model.load(path).signatures["serving_default"](text=tf.constant(TEXTS))
    expected = softmax(model.predict_on_batch(BERTInputPacker(wordpiece, SEQUENCE_LENGTH)(tf.constant(TEXTS))))
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-6)


def test_fill_mask_predicts_each_mask(masked_lm_bundle):
    pretrainer, backbone, tokenizer, path = masked_lm_bundle
    texts = ["the [MASK] film is [MASK] and [MASK]", "no masks here", ""]
    loaded = tf.saved_model.load(path)
    result = loaded.signatures["serving_default"](text=tf.constant(texts))
    predictions, scores = result["predictions"].numpy(), result["scores"].numpy()
    assert predictions.shape == (3, 2, 3) and scores.shape == (3, 2, 3)
    # max_masks=2: the third mask stays; rows without masks get empty slots.
    assert (predictions[0] != b"").all() and (predictions[1:] == b"").all() and (scores[1:] == 0).all()

    # The candidates are the pretrainer's own top tokens at the mask positions, with their
    # probabilities; "[MASK]" written in the text is the mask token.
    tokenizer_with_masks = tokenizer.__class__(tokenizer.get_vocabulary(), special_tokens_in_strings=True)
    features = BERTInputPacker(tokenizer_with_masks, SEQUENCE_LENGTH)(tf.constant(texts))
    ids = features["token_ids"].numpy()[0]
    positions = np.flatnonzero(ids == tokenizer.mask_token_id)
    assert len(positions) == 3
    first_row = {name: value[:1] for name, value in features.items()}
    mask_positions = positions[None, :2].astype("int32")
    probabilities = softmax(pretrainer.predict_on_batch({**first_row, "mask_positions": mask_positions})["mlm"][0])
    best = np.argsort(-probabilities, axis=-1)[:, :3]
    vocabulary = np.array(tokenizer.get_vocabulary())
    assert predictions[0].astype(str).tolist() == vocabulary[best].tolist()
    np.testing.assert_allclose(scores[0], np.take_along_axis(probabilities, best, axis=-1), atol=1e-6)

    # `filled`: the text with the two predicted masks replaced by their best candidate.
    filled_ids = ids.copy()
    filled_ids[positions[:2]] = best[:, 0]
    real = features["padding_mask"].numpy()[0] > 0
    keep = real & ~np.isin(filled_ids, [tokenizer.cls_token_id, tokenizer.sep_token_id])
    expected = tokenizer_with_masks.detokenize(filled_ids[keep]).numpy().decode()
    assert result["filled"].numpy()[0].decode() == expected and expected.endswith("[MASK]")
    assert result["filled"].numpy()[1].decode() == "no masks here"

    embedding = loaded.signatures["embed"](text=tf.constant(texts))["embedding"].numpy()
    np.testing.assert_allclose(embedding, mean_pooled(backbone, features), atol=1e-5)


def test_top_k_above_the_vocabulary_is_refused_at_construction(wordpiece):
    pretrainer = tfllm.models.BERTPretrainer(tiny_bert(wordpiece))
    size = pretrainer.backbone.vocabulary_size
    with pytest.raises(ValueError, match=rf"`top_k` must be at most the model.s vocabulary size \({size}\).*top_k={size + 1}"):
        MaskedLMServer(pretrainer, wordpiece, SEQUENCE_LENGTH, top_k=size + 1)
    assert MaskedLMServer(pretrainer, wordpiece, SEQUENCE_LENGTH, top_k=size).top_k == size


def test_a_trained_model_exports_its_weights_without_the_optimizer_state(wordpiece, tmp_path):
    import os

    import keras

    model = tfllm.models.BERTClassifier(tiny_bert(wordpiece), num_classes=len(LABELS))
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    features = BERTInputPacker(wordpiece, SEQUENCE_LENGTH)(tf.constant(TEXTS))
    model.fit(features, np.array([0, 1, 0, 1]), epochs=1, verbose=0)  # Adam's moments now exist
    path = tfllm.export.export_classifier(model, wordpiece, LABELS, tmp_path / "trained", sequence_length=SEQUENCE_LENGTH)
    directory = os.path.join(path, "variables")
    stored = sum(os.path.getsize(os.path.join(directory, name)) for name in os.listdir(directory))
    weights = sum(np.asarray(weight).nbytes for weight in model.weights)
    assert weights < stored < 1.3 * weights  # not three times: no first and second moments
    served = tf.saved_model.load(path).signatures["serving_default"](text=tf.constant(TEXTS))
    np.testing.assert_allclose(served["probabilities"].numpy(), softmax(model.predict_on_batch(features)), atol=1e-6)
