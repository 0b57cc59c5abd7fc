"""int8 models export for TF Serving: the audit passes (core ops only), a fresh process with
only tensorflow and tensorflow_text serves them, and they answer as the Keras model does."""

import os

import keras
import numpy as np
import tensorflow as tf

import tfllm
from tests.export.conftest import GPT_MAX_NEW_TOKENS, LABELS, SEQUENCE_LENGTH, run_fresh, tiny_bert
from tests.export.test_gpt_export import PROMPTS, _reference_completions
from tfllm.compression import quantize
from tfllm.data import BERTInputPacker

TEXTS = ["a gripping , funny film", "dull and lifeless", ""]


def variables_bytes(path):
    directory = os.path.join(path, "variables")
    return sum(os.path.getsize(os.path.join(directory, name)) for name in os.listdir(directory))


def test_int8_classifier_serves_its_own_probabilities_from_int8_variables(wordpiece, tmp_path):
    keras.utils.set_random_seed(4)
    model = tfllm.models.BERTClassifier(tiny_bert(wordpiece), num_classes=2)
    float_path = tfllm.export.export_classifier(model, wordpiece, LABELS, tmp_path / "float", sequence_length=SEQUENCE_LENGTH)
    quantize(model)
    path = tfllm.export.export_classifier(model, wordpiece, LABELS, tmp_path / "int8", sequence_length=SEQUENCE_LENGTH)
    answers, modules = run_fresh(path, [["serving_default", {"text": TEXTS}]], tmp_path)
    assert not [name for name in modules if name.split(".")[0] in ("tfllm", "keras_hub")]
    logits = model.predict_on_batch(BERTInputPacker(wordpiece, SEQUENCE_LENGTH)(tf.constant(TEXTS)))
    np.testing.assert_allclose(answers[0]["probabilities"], keras.ops.softmax(logits).numpy(), atol=1e-5)
    reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
    assert tf.int8 in set(reader.get_variable_to_dtype_map().values())
    assert variables_bytes(path) < 0.5 * variables_bytes(float_path)


def test_int8_gpt_export_generates_what_generate_does(tmp_path):
    from tfllm.data.samples import STORIES
    from tfllm.tokenizers import BytePairTokenizer

    tokenizer = BytePairTokenizer.train([STORIES], vocabulary_size=400)
    keras.utils.set_random_seed(3)
    model = tfllm.models.GPT(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=2, num_heads=2, hidden_dim=32,
        intermediate_dim=64, max_sequence_length=48,
    )
    quantize(model)
    path = tfllm.export.export_gpt(model, tokenizer, tmp_path / "gpt", max_new_tokens=GPT_MAX_NEW_TOKENS)
    answers, _ = run_fresh(path, [["serving_default", {"prompt": PROMPTS}]], tmp_path)
    assert answers[0]["completion"] == _reference_completions(model, tokenizer, PROMPTS, GPT_MAX_NEW_TOKENS)
