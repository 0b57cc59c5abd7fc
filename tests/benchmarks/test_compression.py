"""benchmarks.compression measures every variant through its SavedModel and writes one table."""

import json
import os

import keras

import tfllm
from benchmarks import compression
from tests.data_files import sample_sentences
from tfllm.compression import merge_lora
from tfllm.tokenizers import WordPieceTokenizer


def classifier_run(directory, tokenizer, lora):
    """A finetune_classifier.py-shaped output directory holding an untrained tiny classifier."""
    backbone = tfllm.models.BERT(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=1, num_heads=2, hidden_dim=32, intermediate_dim=64,
        max_sequence_length=16,
    )
    model = tfllm.models.BERTClassifier(backbone, num_classes=2)
    if lora:
        model.enable_lora(2)
        model = merge_lora(model)
    os.makedirs(directory)
    model.save(os.path.join(directory, "model.keras"))
    tokenizer.save(os.path.join(directory, "tokenizer"))
    with open(os.path.join(directory, "labels.json"), "w") as file:
        json.dump(["0", "1"], file)
    with open(os.path.join(directory, "metrics.json"), "w") as file:
        json.dump({"sequence_length": 16}, file)
    return directory


def test_one_table_of_sizes_latencies_and_accuracies(tmp_path):
    keras.utils.set_random_seed(0)
    tokenizer = WordPieceTokenizer.train(sample_sentences(), vocabulary_size=300)
    sentences = sample_sentences()[:20]
    validation = tmp_path / "dev.tsv"
    validation.write_text("sentence\tlabel\n" + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(sentences)))
    # One run (the other runs go through the same loop, each under its prefix): three exports.
    output = compression.main(
        ["--run", classifier_run(str(tmp_path / "full"), tokenizer, True),
         "--validation-data", str(validation), "--repeats", "2", "--new-tokens", "2", "--output", str(tmp_path / "out")]
    )
    with open(output + ".json") as file:
        report = json.load(file)
    rows = {row["variant"]: row for row in report["classifier"]}
    assert list(rows) == ["fp32", "int8", "bf16"]
    for row in rows.values():
        assert 0 <= row["accuracy"] <= 1 and row["latency_ms_batch_1"] > 0 and row["latency_ms_batch_8"] > 0
    assert rows["int8"]["variables_bytes"] < 0.6 * rows["fp32"]["variables_bytes"]
    assert rows["bf16"]["variables_bytes"] < 0.6 * rows["fp32"]["variables_bytes"]
    gpt = {row["variant"]: row for row in report["gpt"]}
    assert gpt["GPT int8"]["variables_bytes"] < 0.35 * gpt["GPT fp32"]["variables_bytes"]
    assert "| bf16 |" in open(output + ".md").read()
