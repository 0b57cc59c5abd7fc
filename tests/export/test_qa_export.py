"""The question-answering export: question and context in, the answer with character offsets
out, served with only tensorflow and tensorflow_text, equal to the in-process answerer."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfllm
from tests.export.conftest import SEQUENCE_LENGTH, run_fresh, tiny_bert
from tfllm.export import export_question_answerer, predict, read_warmup_requests
from tfllm.inference import QuestionAnswerer

QUESTIONS = ["Where did Anna meet the cast?", "", "What film?", "Who?"]
CONTEXTS = ["Anna met the cast in New York .", "a film", "a gripping , funny film " * 20, ""]
OUTPUTS = {"answer", "answer_start", "answer_end", "score"}


@pytest.fixture(scope="module")
def qa_bundle(wordpiece, tmp_path_factory):
    keras.utils.set_random_seed(7)
    model = tfllm.models.BERTQuestionAnswerer(tiny_bert(wordpiece))
    base = tmp_path_factory.mktemp("qa") / "saved_models" / "qa"
    path = export_question_answerer(model, wordpiece, base, sequence_length=SEQUENCE_LENGTH, stride=4, max_question_length=6)
    return model, wordpiece, path


def test_answers_in_a_fresh_process_equal_the_answerer(qa_bundle, tmp_path):
    model, tokenizer, path = qa_bundle
    requests = [
        ["serving_default", {"question": QUESTIONS, "context": CONTEXTS}],
        ["serving_default", {"question": ["Where?"], "context": [{"bytes_hex": b"\xff\xfe New York".hex()}]}],
        ["serving_default", {"question": [], "context": []}],
    ]
    answers, modules = run_fresh(path, requests, tmp_path)
    assert not [name for name in modules if name.split(".")[0] in ("tfllm", "keras_hub")]

    answerer = QuestionAnswerer(model, tokenizer, SEQUENCE_LENGTH, stride=4, max_question_length=6)
    for answer, (questions, contexts) in ((answers[0], (QUESTIONS, CONTEXTS)), (answers[1], (["Where?"], [b"\xff\xfe New York"]))):
        expected = answerer.answers(tf.constant(questions), tf.constant(contexts))
        assert answer["answer"] == [row[0].decode() for row in expected["answer"].numpy()]
        for name in ("answer_start", "answer_end"):
            assert answer[name] == expected[name].numpy()[:, 0].tolist()
        np.testing.assert_allclose(answer["score"], expected["score"].numpy()[:, 0], atol=1e-5)
    # Every answer is the slice of its context that its offsets name; an empty context has none.
    for context, text, start, end in zip(CONTEXTS, *(answers[0][name] for name in ("answer", "answer_start", "answer_end"))):
        assert (context[start:end] == text and start < end) if context else (text, start, end) == ("", -1, -1)
    assert answers[2] == {name: [] for name in OUTPUTS}


def test_the_export_is_versioned_configured_warmed_up_and_served_over_rest(qa_bundle):
    _, _, path = qa_bundle
    base = os.path.dirname(path)
    with open(os.path.join(os.path.dirname(base), "models.config"), encoding="utf-8") as file:
        assert 'name: "qa"' in file.read()
    logs = read_warmup_requests(os.path.join(path, "assets.extra", "tf_serving_warmup_requests"))
    assert {log.predict_log.request.model_spec.signature_name for log in logs} == {"serving_default", "embed"}
    loaded = tf.saved_model.load(path)
    body = {"instances": [{"question": "Where?", "context": "in New York"}, {"question": "Who?", "context": ""}]}
    rows = predict(loaded, body)["predictions"]
    assert len(rows) == 2 and set(rows[0]) == OUTPUTS and rows[1]["answer_start"] == -1
    columns = predict(loaded, {"inputs": {"question": ["Where?"], "context": ["in New York"]}})["outputs"]
    assert columns["answer"] == [rows[0]["answer"]]
    with pytest.raises(Exception, match="same batch size"):
        loaded.signatures["serving_default"](question=tf.constant(["a", "b"]), context=tf.constant(["c"]))


def test_a_model_without_span_outputs_is_refused(wordpiece, tmp_path):
    classifier = tfllm.models.BERTClassifier(tiny_bert(wordpiece), num_classes=2)
    with pytest.raises(ValueError, match="start_logits"):
        export_question_answerer(classifier, wordpiece, tmp_path / "x", sequence_length=SEQUENCE_LENGTH)
    assert not os.path.exists(tmp_path / "x")
