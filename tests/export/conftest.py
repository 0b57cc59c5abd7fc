"""Tiny trained-tokenizer models, exported once per session, and a fresh-process runner.

The fresh process imports only `tensorflow` and `tensorflow_text`, as TF Serving links in
nothing else: a SavedModel that needs tfllm, keras or keras_hub to load fails there.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import pytest

import tfllm
import tfllm.export._shared_files
from tests.data_files import sample_sentences
from tfllm.data.samples import STORIES
from tfllm.export import export_classifier, export_gpt, export_masked_lm
from tfllm.tokenizers import BytePairTokenizer, WordPieceTokenizer

GPT_MAX_NEW_TOKENS = 12
SEQUENCE_LENGTH = 24
LABELS = ["negative", "positive"]


@pytest.fixture(scope="session")
def gpt_bundle(tmp_path_factory):
    """(model, tokenizer, version path) of a tiny GPT exported with the defaults."""
    directory = tmp_path_factory.mktemp("gpt")
    tokenizer = BytePairTokenizer.train([STORIES], vocabulary_size=400)
    keras.utils.set_random_seed(3)
    model = tfllm.models.GPT(
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        max_sequence_length=48,
    )
    path = export_gpt(model, tokenizer, directory / "saved_models" / "gpt", max_new_tokens=GPT_MAX_NEW_TOKENS)
    return model, tokenizer, path


@pytest.fixture(scope="session")
def wordpiece():
    return WordPieceTokenizer.train(sample_sentences(), vocabulary_size=500)


def tiny_bert(tokenizer):
    return tfllm.models.BERT(
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        max_sequence_length=SEQUENCE_LENGTH,
    )


@pytest.fixture(scope="session")
def classifier_bundle(wordpiece, tmp_path_factory):
    """(classifier, its BERT, tokenizer, version path) of a tiny BERT classifier, text pairs."""
    keras.utils.set_random_seed(4)
    backbone = tiny_bert(wordpiece)
    model = tfllm.models.BERTClassifier(backbone, num_classes=2)
    base = tmp_path_factory.mktemp("classifier") / "saved_models" / "sentiment"
    path = export_classifier(model, wordpiece, LABELS, base, sequence_length=SEQUENCE_LENGTH, text_pair=True)
    return model, backbone, wordpiece, path


@pytest.fixture(scope="session")
def masked_lm_bundle(wordpiece, tmp_path_factory):
    """(pretrainer, its BERT, tokenizer, version path) of a tiny fill-mask export."""
    keras.utils.set_random_seed(5)
    backbone = tiny_bert(wordpiece)
    pretrainer = tfllm.models.BERTPretrainer(backbone)
    base = tmp_path_factory.mktemp("masked_lm") / "saved_models" / "fill_mask"
    path = export_masked_lm(pretrainer, wordpiece, base, sequence_length=SEQUENCE_LENGTH, top_k=3, max_masks=2)
    return pretrainer, backbone, wordpiece, path


_FRESH = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (TF Serving links TF Text in)

    path, requests_path = sys.argv[1:3]
    with open(requests_path, encoding="utf-8") as file:
        requests = json.load(file)
    loaded = tf.saved_model.load(path)

    def tensor(value):
        if isinstance(value, dict):  # {"bytes_hex": ...}: raw bytes
            return bytes.fromhex(value["bytes_hex"])
        if isinstance(value, list):
            return [tensor(item) for item in value]
        return value

    def as_json(value):
        if isinstance(value, bytes):
            return value.decode("utf-8")  # fails on invalid UTF-8, as a JSON response would
        if isinstance(value, np.ndarray) and value.dtype == object:
            return [as_json(item) for item in value]
        return value.tolist()

    answers = []
    for signature, inputs in requests:
        function = loaded.signatures[signature]
        specs = function.structured_input_signature[1]
        arguments = {}
        for name, value in inputs.items():
            array = np.array(tensor(value), dtype=object if specs[name].dtype == tf.string else specs[name].dtype.as_numpy_dtype)
            arguments[name] = tf.constant(array, dtype=specs[name].dtype)
        outputs = function(**arguments)
        answers.append({name: as_json(value.numpy()) for name, value in outputs.items()})
    modules = sorted(name for name in sys.modules if name.split(".")[0] in ("tfllm", "keras", "keras_hub"))
    print(json.dumps({"answers": answers, "modules": modules}))
    """
)


def run_fresh(path, requests, tmp_path):
    """Loads the SavedModel in a new Python importing only tensorflow and tensorflow_text and
    runs `requests` (`[(signature, {input: list})]`; `{"bytes_hex": ...}` for raw bytes).

    Returns `(answers, modules)`: one `{output: nested lists}` per request, and every tfllm,
    keras or keras_hub module that got imported anyway.
    """
    requests_path = os.path.join(tmp_path, "requests.json")
    with open(requests_path, "w", encoding="utf-8") as file:
        json.dump(requests, file)
    result = subprocess.run(
        [sys.executable, "-c", _FRESH, str(path), requests_path],
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    output = json.loads(result.stdout.strip().splitlines()[-1])
    return output["answers"], output["modules"]


# The models.config module loaded from its file on its own: it imports no TensorFlow, so a
# writer process starts in a fraction of a second and many of them overlap.
SHARED_FILES_MODULE = tfllm.export._shared_files.__file__
CONFIG_WRITER = textwrap.dedent(
    """
    import importlib.util, os, sys, time

    module_path, config_path, prefix, count, go = sys.argv[1:6]
    spec = importlib.util.spec_from_file_location("shared_files", module_path)
    models_config = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(models_config)
    while not os.path.exists(go):
        time.sleep(0.001)
    for i in range(int(count)):
        models_config.update_models_config(config_path, f"{prefix}{i}", f"/models/{prefix}{i}")
        print(f"{prefix}{i}", flush=True)  # Completed: this entry must stay in the file.
    """
)
