"""The example scripts run end to end on small data, write metrics.json, and resume after a kill."""

import ast
import json
import math
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.examples.conftest import EXAMPLES, load_example
from tests.workers import run_all, worker_environments
import tfllm
from tfllm import cli
from tfllm.data import BERTInputPacker
from tfllm.tokenizers import WordPieceTokenizer

TINY_GPT = ["--num-layers", "1", "--num-heads", "2", "--hidden-dim", "32", "--intermediate-dim", "64",
            "--sequence-length", "32", "--batch-size", "8", "--vocabulary-size", "300"]
TINY_BERT = ["--num-layers", "1", "--num-heads", "2", "--hidden-dim", "32", "--intermediate-dim", "64",
             "--sequence-length", "32", "--batch-size", "16", "--vocabulary-size", "400"]


def read_metrics(output_dir):
    with open(os.path.join(output_dir, "metrics.json")) as file:
        return json.load(file)


def test_train_gpt(shakespeare_sample, tmp_path):
    output_dir = str(tmp_path / "gpt")
    load_example("train_gpt").main(
        ["--data", shakespeare_sample, "--output-dir", output_dir, "--steps", "6", "--steps-per-epoch", "3", *TINY_GPT,
         "--export-dir", str(tmp_path / "saved_models" / "gpt"), "--quantize", "int8"]
    )
    metrics = read_metrics(output_dir)
    # Evaluated, saved and exported with int8 weights.
    assert metrics["quantization"] == {"mode": "int8", "activations": False}
    assert keras.saving.load_model(os.path.join(output_dir, "model.keras")).quantization == metrics["quantization"]
    for key in ("val_loss", "val_perplexity", "val_nats_per_char"):
        assert math.isfinite(metrics[key]) and metrics[key] > 0
    assert math.isclose(metrics["val_perplexity"], math.exp(metrics["val_loss"]), rel_tol=1e-3)
    # nats/char = total NLL / characters: the loss per token scaled by tokens per character.
    expected = metrics["val_loss"] * metrics["val_tokens"] / metrics["val_characters"]
    assert math.isclose(metrics["val_nats_per_char"], expected, rel_tol=1e-3)
    assert metrics["steps"] == 6
    for name in ("model.keras", "tokenizer/vocab.json", "tokenizer/merges.txt", "history.csv"):
        assert os.path.exists(os.path.join(output_dir, name)), name
    assert metrics["export_path"] == str(tmp_path / "saved_models" / "gpt" / "1")
    assert os.path.exists(tmp_path / "saved_models" / "models.config")


def test_train_gpt_under_mirrored_strategy(shakespeare_sample, tmp_path):
    """`--strategy mirrored` on this machine's one device: the model is built under the
    strategy, trains without XLA (which cannot compile the replicas' collectives) and saves."""
    output_dir = str(tmp_path / "gpt")
    train_gpt = load_example("train_gpt")
    args = train_gpt.parse_args(["--data", shakespeare_sample, "--output-dir", output_dir, "--strategy", "mirrored",
                                 *TINY_GPT])
    assert train_gpt.harness.jit_compile(args) is False
    metrics = train_gpt.main(["--data", shakespeare_sample, "--output-dir", output_dir, "--steps", "4",
                              "--steps-per-epoch", "2", "--strategy", "mirrored", *TINY_GPT])
    assert metrics["steps"] == 4 and math.isfinite(metrics["val_loss"])
    assert os.path.exists(os.path.join(output_dir, "model.keras"))


@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="the TensorFlow-backend error")
def test_train_gpt_refuses_keras_distribution_on_tensorflow(tmp_path):
    """`--distribution` is keras.distribution, which Keras supports only on JAX."""
    train_gpt = load_example("train_gpt")
    args = train_gpt.parse_args(["--output-dir", str(tmp_path / "gpt"), "--distribution", "data"])
    with pytest.raises(ValueError, match="only on the JAX backend"):
        train_gpt.harness.start(args)


# Slow (about 35 s: a JAX process of its own, which must split the CPU into two devices
# before JAX starts): run with `pytest -m slow`.
@pytest.mark.slow
def test_train_gpt_under_model_parallel_on_two_jax_devices(shakespeare_sample, tmp_path):
    """`--distribution model` on JAX over two host CPU devices: the model is built sharded,
    trains, evaluates and saves whole weights."""
    output_dir = str(tmp_path / "gpt")
    command = [sys.executable, os.path.join(EXAMPLES, "train_gpt.py"), "--data", shakespeare_sample, "--output-dir",
               output_dir, "--steps", "4", "--steps-per-epoch", "2", "--distribution", "model", *TINY_GPT]
    environment = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    process = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    metrics = read_metrics(output_dir)
    assert metrics["steps"] == 4 and math.isfinite(metrics["val_loss"])
    assert os.path.exists(os.path.join(output_dir, "model.keras"))


# Slow (about 35 s: two worker processes): run with `pytest -m slow`.
@pytest.mark.slow
def test_train_gpt_on_two_localhost_workers(shakespeare_sample, tmp_path):
    """`--strategy multi-worker`: two workers on localhost train one model; the chief writes
    --output-dir and --export-dir, the other worker a temporary directory."""
    output_dir, export_dir = str(tmp_path / "gpt"), str(tmp_path / "saved_models" / "gpt")
    command = [sys.executable, os.path.join(EXAMPLES, "train_gpt.py"), "--data", shakespeare_sample,
               "--output-dir", output_dir, "--export-dir", export_dir, "--steps", "4", "--steps-per-epoch", "2",
               "--strategy", "multi-worker", *TINY_GPT]
    outputs = run_all([command] * 2, worker_environments(2), tmp_path, timeout=300)
    chief, worker = (ast.literal_eval(output.strip().splitlines()[-1]) for output in outputs)
    saved = read_metrics(output_dir)  # the chief's
    assert saved["export_path"] == chief["export_path"] == os.path.join(export_dir, "1")
    assert not worker["export_path"].startswith(str(tmp_path))
    assert saved["steps"] == worker["steps"] == 4
    assert round(saved["val_loss"], 4) == worker["val_loss"]  # one model, evaluated by both


# Slow (about 45 s, a killed subprocess and a resumed one): run with `pytest -m slow`.
@pytest.mark.slow
def test_train_gpt_resumes_after_a_kill(shakespeare_sample, tmp_path):
    output_dir = str(tmp_path / "gpt")
    command = [sys.executable, os.path.join(EXAMPLES, "train_gpt.py"), "--data", shakespeare_sample,
               "--output-dir", output_dir, "--steps", "400", "--steps-per-epoch", "2", *TINY_GPT]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # Killed once a complete backup exists (its metadata is written last).
    backup = os.path.join(output_dir, "backup", "training_metadata.json")
    deadline = time.time() + 240
    while not os.path.exists(backup) and run.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert run.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not os.path.exists(os.path.join(output_dir, "metrics.json"))

    # The same run, shortened to 40 steps (20 epochs) so that the test stays quick.
    shorter = command[:command.index("--steps") + 1] + ["40"] + command[command.index("--steps") + 2:]
    resumed = subprocess.run(shorter, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    # It picked up the backup (epochs of 2 steps) instead of starting over...
    history = open(os.path.join(output_dir, "history.csv")).read().splitlines()
    epochs = [int(line.split(",")[0]) for line in history[1:] if line and line[0].isdigit()]
    assert epochs[0] == 0 and epochs.count(0) == 1, history
    assert epochs[-1] == 19
    assert read_metrics(output_dir)["steps"] == 40


@pytest.mark.slow
def test_pretrain_then_finetune(sst2_sample, tmp_path):
    train, dev = sst2_sample
    pretrain_dir = str(tmp_path / "pretrain")
    pretrain_metrics = load_example("pretrain_bert").main(
        ["--data", train, "--output-dir", pretrain_dir, "--steps", "4", "--steps-per-epoch", "2", *TINY_BERT,
         "--export-dir", str(tmp_path / "saved_models" / "fill_mask")]
    )
    assert os.path.exists(os.path.join(pretrain_metrics["export_path"], "saved_model.pb"))
    assert pretrain_metrics["steps"] == 4
    # Four steps leave the masked-LM loss near a uniform guess over the vocabulary (ln 400).
    assert abs(pretrain_metrics["val_mlm_loss"] - math.log(400)) < 1.5
    backbone = keras.saving.load_model(os.path.join(pretrain_dir, "backbone.keras"))
    assert isinstance(backbone, tfllm.models.BERT) and backbone.num_layers == 1

    finetune_dir = str(tmp_path / "finetune")
    load_example("finetune_classifier").main(
        ["--data", train, "--validation-data", dev, "--init-from", pretrain_dir, "--output-dir", finetune_dir,
         "--epochs", "1", "--sequence-length", "32", "--batch-size", "32"]
    )
    metrics = read_metrics(finetune_dir)
    assert metrics["initialised_from"] == pretrain_dir
    # The classifier started from the pretrained backbone: one epoch leaves it close to it.
    classifier = keras.saving.load_model(os.path.join(finetune_dir, "model.keras"))
    pretrained = keras.ops.convert_to_numpy(backbone.token_embedding.embeddings).ravel()
    tuned = keras.ops.convert_to_numpy(classifier.backbone.token_embedding.embeddings).ravel()
    assert np.corrcoef(pretrained, tuned)[0, 1] > 0.9

    # With --lora-rank only the adapters and the head train; the merged model (here also quantized)
    # is evaluated, saved and exported.
    lora_dir = str(tmp_path / "lora")
    metrics = load_example("finetune_classifier").main(
        ["--data", train, "--validation-data", dev, "--init-from", pretrain_dir, "--output-dir", lora_dir,
         "--epochs", "1", "--sequence-length", "32", "--batch-size", "32", "--lora-rank", "2",
         "--lora-targets", "query,value", "--quantize", "int8", "--export-dir", str(tmp_path / "saved_models" / "lora")]
    )
    # One block of width 32: query and value adapters (32x2 + 2x32 each), the pooled head (32x2 + 2).
    assert metrics["trainable_parameters"] == 2 * (32 * 2 + 2 * 32) + 32 * 2 + 2
    assert metrics["lora"] == {"rank": 2, "alpha": 2.0, "targets": ["query", "value"]}
    assert os.path.getsize(os.path.join(lora_dir, "lora.safetensors")) == metrics["lora_file_bytes"]
    merged = keras.saving.load_model(os.path.join(lora_dir, "model.keras"))
    # Merged, then quantized: no adapters, int8 weights.
    assert merged.backbone.lora is None and merged.quantization == metrics["quantization"]
    assert metrics["quantization"] == {"mode": "int8", "activations": False}
    texts = ["a gripping , funny film", "dull and far too long"]
    served = tf.saved_model.load(metrics["export_path"]).signatures["serving_default"](text=tf.constant(texts))
    tokenizer = WordPieceTokenizer.load(os.path.join(lora_dir, "tokenizer"))
    expected = keras.ops.softmax(merged.predict(BERTInputPacker(tokenizer, 32)(tf.constant(texts)), verbose=0))
    np.testing.assert_allclose(served["probabilities"].numpy(), keras.ops.convert_to_numpy(expected), atol=1e-5)


# Slow (about 80 s; the classifier learns in tests/models, its export answers in tests/export):
# run with `pytest -m slow`.
@pytest.mark.slow
def test_finetune_from_scratch_learns_and_holds_out_10_percent(tmp_path):
    """A topic word decides the label: a working pipeline and model beat chance (1/3) by far.

    A tiny from-scratch BERT (BERT's 0.02 initialisation is small for a 32-wide model) first
    separates one class and sits on a plateau with the other two merged for a few hundred
    steps; scrambled labels or a broken pipeline would stay near 1/3.
    """
    topics = {"Sports": "match goal team", "Business": "stock market bank", "World": "war treaty nation"}
    rows = []
    for i in range(900):
        label = list(topics)[i % 3]
        rows.append(f"{topics[label].split()[i % 3]} news item {i % 17} today\t{label}\n")
    data = tmp_path / "topics.tsv"
    data.write_text("".join(rows), encoding="utf-8")  # no header, like AG News
    output_dir = str(tmp_path / "scratch")
    export_dir = str(tmp_path / "saved_models" / "topics")
    metrics = load_example("finetune_classifier").main(
        ["--data", str(data), "--output-dir", output_dir, "--epochs", "3", "--export-dir", export_dir, *TINY_BERT]
    )
    assert metrics["num_classes"] == 3
    with open(os.path.join(output_dir, "labels.json")) as file:
        assert json.load(file) == ["Business", "Sports", "World"]
    assert len(open(os.path.join(output_dir, "data", "validation.tsv")).readlines()) == 90
    assert metrics["val_accuracy"] > 0.6

    # The export answers raw text with the label names the Keras model predicts.
    assert metrics["export_path"] == os.path.join(export_dir, "1")
    texts = ["goal scored in the match", "the bank and the stock market", "a treaty between nations"]
    served = tf.saved_model.load(metrics["export_path"]).signatures["serving_default"](text=tf.constant(texts))
    model = keras.saving.load_model(os.path.join(output_dir, "model.keras"))
    tokenizer = WordPieceTokenizer.load(os.path.join(output_dir, "tokenizer"))
    packed = BERTInputPacker(tokenizer, 32)(tf.constant(texts))
    expected = keras.ops.softmax(model.predict(packed, verbose=0)).numpy()
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)
    labels = ["Business", "Sports", "World"]
    assert [label.decode() for label in served["label"].numpy()] == [labels[i] for i in expected.argmax(-1)]


def test_finetune_ner_learns_entities_scores_and_exports(tmp_path):
    """Names are PER and cities LOC wherever they stand: a working pipeline tags them."""
    rng = np.random.default_rng(0)
    people, cities = ["Anna", "Boris", "Chen", "Dora"], ["Paris", "Lima", "Oslo", "Kyiv"]
    filler = ["met", "the", "team", "in", "today", "and", "left", "."]
    lines = ["-DOCSTART- -X- O", ""]
    for _ in range(300):
        words = list(rng.choice(filler, 6))
        words.insert(int(rng.integers(0, 6)), f"{rng.choice(people)} {rng.choice(people)}")
        words.insert(int(rng.integers(0, 7)), str(rng.choice(cities)))
        for word in " ".join(words).split():
            tag = "PER" if word in people else "LOC" if word in cities else "O"
            # IOB1, as CoNLL-2003's original files: I- unless an entity follows one of its type.
            lines.append(f"{word} NNP {'O' if tag == 'O' else 'I-' + tag}")
        lines.append("")
    data = tmp_path / "train.txt"
    data.write_text("\n".join(lines), encoding="utf-8")
    output_dir = str(tmp_path / "ner")
    metrics = load_example("finetune_ner").main(
        ["--data", str(data), "--output-dir", output_dir, "--steps", "300", "--learning-rate", "3e-3", "--cased",
         "--export-dir", str(tmp_path / "saved_models" / "ner"), "--bucket-boundaries", "16", *TINY_BERT]
    )
    assert metrics["validation_sentences"] == 30 and metrics["entity_types"] == ["LOC", "PER"]
    assert metrics["val_f1"] > 0.8 and set(metrics["val_per_type"]) == {"LOC", "PER"}
    with open(os.path.join(output_dir, "labels.json")) as file:
        assert json.load(file) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    served = tf.saved_model.load(metrics["export_path"]).signatures["serving_default"]
    out = served(text=tf.constant(["Anna met the team in Oslo today"]))
    assert b"Oslo" in out["entity_texts"].numpy()[0].tolist()
    oslo = out["entity_texts"].numpy()[0].tolist().index(b"Oslo")
    assert out["entity_types"].numpy()[0][oslo] == b"LOC" and out["entity_starts"].numpy()[0][oslo] == 21
    # `tfllm export ner RUN` exports the run again, with its sequence length and stride.
    assert cli.main(["export", "ner", output_dir, str(tmp_path / "cli" / "ner")]) == 0
    again = tf.saved_model.load(str(tmp_path / "cli" / "ner" / "1")).signatures["serving_default"]
    text = tf.constant(["Anna met the team in Oslo today", ""])
    assert {k: v.numpy().tolist() for k, v in again(text=text).items()} == {
        k: v.numpy().tolist() for k, v in served(text=text).items()
    }


def test_finetune_qa_learns_spans_scores_and_exports(tmp_path):
    """"Who?" asks for the person and "Which city?" for the city, wherever they stand in the
    context: a working pipeline (windows, answer positions, span decoding) answers both."""
    rng = np.random.default_rng(0)
    people, cities = ["Anna", "Boris", "Chen", "Dora"], ["Paris", "Lima", "Oslo", "Kyiv"]
    filler = ["met", "the", "team", "in", "today", "and", "left", "."]
    articles = []
    for article in range(40):
        paragraphs = []
        for paragraph in range(5):
            words = list(rng.choice(filler, 8))
            person, city = str(rng.choice(people)), str(rng.choice(cities))
            words.insert(int(rng.integers(0, 8)), person)
            words.insert(int(rng.integers(0, 9)), city)
            context = " ".join(words)
            qas = [
                {"id": f"{article}-{paragraph}-{kind}", "question": question, "answers": [{"text": answer, "answer_start": context.index(answer)}]}
                for kind, (question, answer) in enumerate([("Who ?", person), ("Which city ?", city)])
            ]
            paragraphs.append({"context": context, "qas": qas})
        articles.append({"title": f"article {article}", "paragraphs": paragraphs})
    data = tmp_path / "train.json"
    data.write_text(json.dumps({"version": "1.1", "data": articles}), encoding="utf-8")
    output_dir = str(tmp_path / "qa")
    metrics = load_example("finetune_qa").main(
        ["--data", str(data), "--output-dir", output_dir, "--steps", "800", "--learning-rate", "3e-3", "--cased",
         "--stride", "8", "--max-question-length", "6", "--bucket-boundaries", "",
         "--export-dir", str(tmp_path / "saved_models" / "qa"), *TINY_BERT, "--num-layers", "2", "--sequence-length", "24"]
    )
    # 4 of 40 articles held out: 20 paragraphs, 40 questions, none of their contexts trained on.
    assert metrics["validation_questions"] == 40
    assert metrics["val_exact_match"] > 0.8 and metrics["val_f1"] >= metrics["val_exact_match"]
    with open(os.path.join(output_dir, "qa.json")) as file:
        assert json.load(file)["stride"] == 8
    served = tf.saved_model.load(metrics["export_path"]).signatures["serving_default"]
    context = "the team met Dora today in Oslo and left ."
    out = served(question=tf.constant(["Which city ?", "Who ?"]), context=tf.constant([context] * 2))
    assert out["answer"].numpy().tolist() == [b"Oslo", b"Dora"]
    assert out["answer_start"].numpy().tolist() == [context.index("Oslo"), context.index("Dora")]
    assert cli.main(["export", "qa", output_dir, str(tmp_path / "cli" / "qa")]) == 0
    again = tf.saved_model.load(str(tmp_path / "cli" / "qa" / "1")).signatures["serving_default"]
    out_again = again(question=tf.constant(["Which city ?", "Who ?"]), context=tf.constant([context] * 2))
    assert {k: v.numpy().tolist() for k, v in out_again.items()} == {k: v.numpy().tolist() for k, v in out.items()}


def test_distill_classifier_into_a_student_of_fewer_blocks(sst2_sample, tmp_path):
    train, dev = sst2_sample
    teacher_dir = str(tmp_path / "teacher")
    two_blocks = [flag if flag != "1" else "2" for flag in TINY_BERT[:2]] + TINY_BERT[2:]
    load_example("finetune_classifier").main(
        ["--data", train, "--validation-data", dev, "--output-dir", teacher_dir, "--epochs", "1", *two_blocks]
    )
    student_dir = str(tmp_path / "student")
    metrics = load_example("distill").main(
        ["--teacher", teacher_dir, "--data", train, "--validation-data", dev, "--output-dir", student_dir,
         "--epochs", "1", "--batch-size", "16", "--temperature", "3", "--hidden-weight", "1",
         "--export-dir", str(tmp_path / "saved_models")]
    )
    # A third of two blocks, rounded up: one block, the teacher's second, evenly spaced from its last.
    teacher = keras.saving.load_model(os.path.join(teacher_dir, "model.keras"))
    student = keras.saving.load_model(os.path.join(student_dir, "model.keras"))
    assert isinstance(student, tfllm.models.BERTClassifier) and student.backbone.num_layers == 1
    assert metrics["distilled_from"] == {
        "run": teacher_dir, "teacher_layers": 2, "temperature": 3.0, "alpha": 0.5, "hidden_weight": 1.0
    }
    assert metrics["sequence_length"] == 32  # the teacher's, from its metrics.json
    assert 0 <= metrics["val_accuracy"] <= 1 and os.path.exists(os.path.join(metrics["export_path"], "saved_model.pb"))
    # The student reads the teacher's vocabulary and started from its weights: one epoch leaves them close.
    vocabularies = [open(os.path.join(run, "tokenizer", "vocab.txt")).read() for run in (teacher_dir, student_dir)]
    assert vocabularies[0] == vocabularies[1]
    taught = keras.ops.convert_to_numpy(teacher.backbone.token_embedding.embeddings).ravel()
    learned = keras.ops.convert_to_numpy(student.backbone.token_embedding.embeddings).ravel()
    assert np.corrcoef(taught, learned)[0, 1] > 0.9

    # A teacher of other labels, or a student that would bring its own tokenizer, is refused.
    with open(os.path.join(teacher_dir, "labels.json"), "w") as file:
        json.dump(["bad", "good"], file)
    with pytest.raises(ValueError, match="was trained on the labels"):
        load_example("distill").main(
            ["--teacher", teacher_dir, "--data", train, "--validation-data", dev, "--output-dir", str(tmp_path / "s"),
             "--steps", "1", "--batch-size", "16"]
        )
    with pytest.raises(ValueError, match="--init-from and --distill-from"):
        load_example("finetune_classifier").main(
            ["--data", train, "--output-dir", str(tmp_path / "s2"), "--distill-from", teacher_dir,
             "--init-from", teacher_dir, "--steps", "1"]
        )
