"""The named-entity export: raw text in, entities with character offsets out, served with
only tensorflow and tensorflow_text, equal to the in-process recognizer."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfllm
from tests.export.conftest import SEQUENCE_LENGTH, run_fresh, tiny_bert
from tfllm.export import export_token_classifier, predict, read_warmup_requests
from tfllm.inference import EntityRecognizer

TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
TEXTS = ["Anna met the cast in New York .", "", "a gripping , funny film " * 20, "😀 \u0007 é"]


@pytest.fixture(scope="module")
def ner_bundle(wordpiece, tmp_path_factory):
    keras.utils.set_random_seed(6)
    model = tfllm.models.BERTTokenClassifier(tiny_bert(wordpiece), num_classes=len(TAGS))
    # Push the untrained head towards entity tags, so the exported model returns entities.
    kernel, bias = model.output_dense.get_weights()
    model.output_dense.set_weights([kernel * 50, np.array([0.0, 0.5, 0.5, 0.5, 0.5], "float32")])
    base = tmp_path_factory.mktemp("ner") / "saved_models" / "ner"
    path = export_token_classifier(model, wordpiece, TAGS, base, sequence_length=SEQUENCE_LENGTH, stride=5)
    return model, wordpiece, path


def test_entities_in_a_fresh_process_equal_the_recognizer(ner_bundle, tmp_path):
    model, tokenizer, path = ner_bundle
    requests = [
        ["serving_default", {"text": TEXTS}],
        ["serving_default", {"text": [{"bytes_hex": b"\xff\xfe New York".hex()}]}],
        ["serving_default", {"text": []}],
    ]
    answers, modules = run_fresh(path, requests, tmp_path)
    assert not [name for name in modules if name.split(".")[0] in ("tfllm", "keras_hub")]

    recognizer = EntityRecognizer(model, tokenizer, TAGS, SEQUENCE_LENGTH, stride=5)
    for answer, texts in ((answers[0], TEXTS), (answers[1], [b"\xff\xfe New York"])):
        expected = recognizer.entities(tf.constant(texts))
        assert answer["entity_texts"] == [[t.decode() for t in row] for row in expected["entity_texts"].numpy()]
        for name in ("entity_types", "entity_starts", "entity_ends"):
            values = expected[name].numpy().tolist()
            assert answer[name] == ([[t.decode() for t in row] for row in values] if name == "entity_types" else values)
        np.testing.assert_allclose(answer["entity_scores"], expected["entity_scores"].numpy(), atol=1e-5)
    # The long text has entities beyond the first window, and every offset names its text.
    long_row = TEXTS[2]
    spans = [(s, e, t) for s, e, t in zip(answers[0]["entity_starts"][2], answers[0]["entity_ends"][2], answers[0]["entity_texts"][2]) if s >= 0]
    assert spans and max(s for s, _, _ in spans) > SEQUENCE_LENGTH * 3
    assert all(long_row[s:e] == t for s, e, t in spans)
    assert all(t == "" and s == -1 for t, s in zip(answers[0]["entity_texts"][1], answers[0]["entity_starts"][1]))
    assert answers[2] == {name: [] for name in answers[2]} and len(answers[2]) == 5


def test_the_export_is_versioned_configured_warmed_up_and_served_over_rest(ner_bundle):
    _, _, path = ner_bundle
    base = os.path.dirname(path)
    with open(os.path.join(os.path.dirname(base), "models.config"), encoding="utf-8") as file:
        assert 'name: "ner"' in file.read()
    logs = read_warmup_requests(os.path.join(path, "assets.extra", "tf_serving_warmup_requests"))
    assert {log.predict_log.request.model_spec.signature_name for log in logs} == {"serving_default", "embed"}
    loaded = tf.saved_model.load(path)
    rows = predict(loaded, {"instances": ["Anna met the cast in New York .", ""]})["predictions"]
    assert len(rows) == 2 and set(rows[0]) == {"entity_texts", "entity_types", "entity_starts", "entity_ends", "entity_scores"}
    assert rows[1]["entity_starts"] == [-1] * len(rows[1]["entity_starts"])


def test_labels_that_do_not_fit_the_model_are_refused(ner_bundle, tmp_path):
    model, tokenizer, _ = ner_bundle
    with pytest.raises(ValueError, match="5 classes but 3 labels"):
        export_token_classifier(model, tokenizer, ["O", "B-X", "I-X"], tmp_path / "x", sequence_length=SEQUENCE_LENGTH)
    assert not os.path.exists(tmp_path / "x")
