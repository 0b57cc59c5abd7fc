"""examples/finetune_classifier.py --init-from a Hugging Face BERT directory, end to end."""

import json
import os

import keras
import numpy as np
import pytest
from safetensors.numpy import load_file

import tfllm  # noqa: F401  (registers the layers that model.keras holds)

from tests.convert.conftest import BERT_VOCABULARY, make_bert_directory, make_gpt2_directory
from tests.examples.conftest import load_example
from tfllm.training import harness


def _sentiment_files(tmp_path):
    """A word decides the label ("fun" 1, "flat" 0); the tiny vocabulary spells every word."""
    def rows(count, offset):
        return "".join(
            f"{'a fun' if (i + offset) % 2 else 'the flat'} film of the year {i % 7}\t{(i + offset) % 2}\n"
            for i in range(count)
        )

    train, dev = tmp_path / "train.tsv", tmp_path / "dev.tsv"
    train.write_text("sentence\tlabel\n" + rows(256, 0), encoding="utf-8")
    dev.write_text("sentence\tlabel\n" + rows(64, 1), encoding="utf-8")
    return str(train), str(dev)


# Slow (about 40 s; the import itself is tested in tests/convert): run with `pytest -m slow`.
@pytest.mark.slow
def test_finetune_from_a_huggingface_directory(tmp_path):
    hf_directory = str(tmp_path / "hf-bert")
    make_bert_directory(hf_directory)
    train, dev = _sentiment_files(tmp_path)
    output_dir = str(tmp_path / "finetune")
    metrics = load_example("finetune_classifier").main(
        ["--data", train, "--validation-data", dev, "--init-from", hf_directory, "--output-dir", output_dir,
         "--steps", "6", "--sequence-length", "16", "--bucket-boundaries", "8", "--batch-size", "32",
         "--learning-rate", "1e-3", "--no-jit"]
    )
    assert metrics["initialised_from"] == hf_directory
    assert 0.0 <= metrics["val_accuracy"] <= 1.0 and np.isfinite(metrics["val_loss"])
    # The directory's own vocabulary and lower-casing...
    with open(os.path.join(output_dir, "tokenizer", "vocab.txt"), encoding="utf-8") as file:
        assert file.read().splitlines() == BERT_VOCABULARY
    with open(os.path.join(output_dir, "tokenizer", "tfllm_tokenizer.json"), encoding="utf-8") as file:
        assert json.load(file)["lowercase"] is True
    # ...and its weights: six small steps leave the fine-tuned backbone close to them (a fresh
    # initialisation would be uncorrelated).
    classifier = keras.saving.load_model(os.path.join(output_dir, "model.keras"))
    tuned = keras.ops.convert_to_numpy(classifier.backbone.token_embedding.embeddings)
    imported = load_file(os.path.join(hf_directory, "model.safetensors"))["embeddings.word_embeddings.weight"]
    assert np.corrcoef(tuned.ravel(), imported.ravel())[0, 1] > 0.9


def test_init_from_refuses_what_is_not_a_bert(tmp_path):
    make_gpt2_directory(tmp_path / "gpt2")
    with pytest.raises(ValueError, match="this task needs a BERT"):
        harness.load_bert(str(tmp_path / "gpt2"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ValueError, match="neither a pretrain_bert.py output"):
        harness.load_bert(str(tmp_path / "empty"))
