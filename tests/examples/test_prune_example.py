"""prune.py end to end on a tiny fine-tuned classifier: ranks, prunes, recovers, saves and exports."""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from tests.examples.conftest import load_example
from tfllm.data import BERTInputPacker
from tfllm.tokenizers import WordPieceTokenizer

TINY_BERT = ["--num-layers", "2", "--num-heads", "4", "--hidden-dim", "32", "--intermediate-dim", "64",
             "--sequence-length", "32", "--batch-size", "16", "--vocabulary-size", "400"]


def test_prune_a_finetuned_classifier(sst2_sample, tmp_path):
    train, dev = sst2_sample
    run = str(tmp_path / "run")
    load_example("finetune_classifier").main(
        ["--data", train, "--validation-data", dev, "--output-dir", run, "--steps", "4", "--no-jit", *TINY_BERT]
    )
    output_dir = str(tmp_path / "pruned")
    metrics = load_example("prune").main(
        ["--init-from", run, "--data", train, "--validation-data", dev, "--output-dir", output_dir,
         "--heads", "0.5", "--feedforward", "0.25", "--importance-batches", "2", "--steps", "2",
         "--batch-size", "16", "--no-jit", "--export-dir", str(tmp_path / "saved_models" / "pruned")]
    )
    # Half of the 8 heads go, at least one stays per layer; a quarter of each layer's 64 units.
    assert metrics["heads_per_layer_before"] == [4, 4]
    assert sum(metrics["heads_per_layer"]) == 4 and min(metrics["heads_per_layer"]) >= 1
    assert metrics["intermediate_per_layer"] == [48, 48]
    assert metrics["parameters"] < metrics["parameters_before"]
    for key in ("val_accuracy_before", "val_accuracy_pruned", "val_accuracy"):
        assert 0.0 <= metrics[key] <= 1.0
    with open(os.path.join(output_dir, "metrics.json")) as file:
        assert json.load(file)["heads_per_layer"] == metrics["heads_per_layer"]

    model = keras.saving.load_model(os.path.join(output_dir, "model.keras"))
    assert model.backbone.num_heads == metrics["heads_per_layer"] and model.count_params() == metrics["parameters"]
    texts = ["a gripping , funny film", "dull and far too long"]
    served = tf.saved_model.load(metrics["export_path"]).signatures["serving_default"](text=tf.constant(texts))
    tokenizer = WordPieceTokenizer.load(os.path.join(output_dir, "tokenizer"))
    expected = keras.ops.softmax(model.predict(BERTInputPacker(tokenizer, 32)(tf.constant(texts)), verbose=0))
    np.testing.assert_allclose(served["probabilities"].numpy(), keras.ops.convert_to_numpy(expected), atol=1e-5)
