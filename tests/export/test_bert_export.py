"""BERT exports: classifier probabilities equal the Keras model's; fill-mask; embeddings."""

import numpy as np
import tensorflow as tf

from tests.export.conftest import LABELS, SEQUENCE_LENGTH, run_fresh
from tfllm.data import BERTInputPacker

TEXTS = ["a gripping , funny film", "dull and lifeless", "", "😀 \u0007"]
PAIRS = ["really", "", "x", "y"]


def test_classifier_in_a_fresh_process_equals_the_keras_model(classifier_bundle, tmp_path):
    model, tokenizer, path = classifier_bundle
    long_text = "so good " * 100
    requests = [
        ["serving_default", {"text": TEXTS, "text_pair": PAIRS}],
        ["serving_default", {"text": [long_text, {"bytes_hex": "ff00c3"}], "text_pair": [long_text, ""]}],
        ["serving_default", {"text": [], "text_pair": []}],
        ["embed", {"text": TEXTS}],
    ]
    answers, modules = run_fresh(path, requests, tmp_path)
    assert not [name for name in modules if name.split(".")[0] in ("tfllm", "keras_hub")]

    features = BERTInputPacker(tokenizer, SEQUENCE_LENGTH)(tf.constant(TEXTS), tf.constant(PAIRS))
    expected = tf.nn.softmax(model.predict_on_batch(features)).numpy()
    np.testing.assert_allclose(answers[0]["probabilities"], expected, atol=1e-6)
    assert answers[0]["label"] == [LABELS[i] for i in expected.argmax(-1)]
    assert len(answers[1]["label"]) == 2 and np.allclose(np.sum(answers[1]["probabilities"], -1), 1)
    assert answers[2] == {"probabilities": [], "label": []}

    backbone = next(layer for layer in model.layers if layer.name == "bert")
    hidden = backbone.predict_on_batch(BERTInputPacker(tokenizer, SEQUENCE_LENGTH)(tf.constant(TEXTS)))["sequence_output"]
    mask = BERTInputPacker(tokenizer, SEQUENCE_LENGTH)(tf.constant(TEXTS))["padding_mask"].numpy()[:, :, None]
    np.testing.assert_allclose(answers[3]["embedding"], (hidden * mask).sum(1) / mask.sum(1), atol=1e-5)


def test_fill_mask_predicts_each_mask(masked_lm_bundle):
    pretrainer, tokenizer, path = masked_lm_bundle
    texts = ["the [MASK] film is [MASK] and [MASK]", "no masks here", ""]
    result = tf.saved_model.load(path).signatures["serving_default"](text=tf.constant(texts))
    predictions, scores = result["predictions"].numpy(), result["scores"].numpy()
    assert predictions.shape == (3, 2, 3) and scores.shape == (3, 2, 3)
    # max_masks=2: the third mask stays; rows without masks get empty slots.
    assert (predictions[0] != b"").all() and (predictions[1:] == b"").all() and (scores[1:] == 0).all()
    assert (np.diff(scores[0], axis=-1) <= 0).all()

    # The candidates are the pretrainer's own top tokens at the mask positions.
    packed = BERTInputPacker(tokenizer, SEQUENCE_LENGTH)(tf.constant(texts[:1]))
    ids = packed["token_ids"].numpy()[0]
    tokenizer_with_masks = tokenizer.__class__(tokenizer.get_vocabulary(), special_tokens_in_strings=True)
    ids = BERTInputPacker(tokenizer_with_masks, SEQUENCE_LENGTH)(tf.constant(texts[:1]))
    positions = np.flatnonzero(ids["token_ids"].numpy()[0] == tokenizer.mask_token_id)[:2]
    logits = pretrainer.predict_on_batch({**ids, "mask_positions": positions[None, :].astype("int32")})["mlm"][0]
    vocabulary = np.array(tokenizer.get_vocabulary())
    expected = vocabulary[np.argsort(-logits, axis=-1)[:, :3]]
    assert predictions[0].astype(str).tolist() == expected.tolist()
    filled = result["filled"].numpy()[0].decode()
    assert filled.split()[1] == expected[0][0].removeprefix("##") or expected[0][0].startswith("##")
    assert "[MASK]" in filled  # the third mask had no slot
    embedding = tf.saved_model.load(path).signatures["embed"](text=tf.constant(texts))["embedding"]
    assert embedding.shape == (3, 32)
