"""`benchmarks.finetune_transformers`: both tasks end to end on tiny files and a tiny random BERT."""

import json
import re
import string

import pytest

pytest.importorskip("torch", reason="the transformers side of the benchmark runs on PyTorch")
transformers = pytest.importorskip("transformers", reason="the benchmark fine-tunes a transformers model")

from benchmarks import finetune_transformers  # noqa: E402

CONLL = """-DOCSTART- -X- -X- O

Peter NNP B-PER
Blackburn NNP I-PER
visited VBD O
Paris NNP B-LOC
. . O

John NNP B-PER
lives VBZ O
in IN O
Berlin NNP B-LOC

Mary NNP B-PER
left VBD O
London NNP B-LOC
"""

CONTEXTS = [
    "Peter Blackburn visited Paris in the spring of 1996.",
    "John lives in Berlin, the capital of Germany.",
]
QUESTIONS = [
    (0, "Who visited Paris?", "Peter Blackburn"),
    (0, "When did Peter visit Paris?", "the spring of 1996"),
    (1, "Where does John live?", "Berlin"),
    (1, "What is Berlin the capital of?", "Germany"),
]


def squad_json():
    paragraphs = [{"context": context, "qas": []} for context in CONTEXTS]
    for number, (paragraph, question, answer) in enumerate(QUESTIONS):
        start = CONTEXTS[paragraph].index(answer)
        paragraphs[paragraph]["qas"].append(
            {"id": f"q{number}", "question": question, "answers": [{"text": answer, "answer_start": start}]}
        )
    return {"version": "1.1", "data": [{"title": "Tiny", "paragraphs": paragraphs}]}


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A randomly initialised one-layer BERT, saved as a Hugging Face directory with its vocab.txt."""
    directory = tmp_path_factory.mktemp("tiny-bert")
    texts = [CONLL, *CONTEXTS, *(question for _, question, _ in QUESTIONS)]
    words = {word.lower() for text in texts for word in re.findall(r"\w+|[^\w\s]", text)}
    pieces = sorted(words | set(string.ascii_lowercase + string.digits))
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *pieces]
    (directory / "vocab.txt").write_text("\n".join(vocabulary) + "\n")
    config = transformers.BertConfig(
        vocab_size=len(vocabulary),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    transformers.BertModel(config).save_pretrained(directory)
    return directory


def run(tmp_path, task, *arguments):
    output = tmp_path / f"{task}.json"
    report = finetune_transformers.main([task, *arguments, "--steps", "2", "--output", str(output)])
    assert json.loads(output.read_text()) == report
    for key in ("task", "model", "steps", "planned_steps", "training_seconds", "ms_per_step", "batch_size"):
        assert key in report
    assert report["task"] == task and report["steps"] == report["planned_steps"] == 2
    assert report["ms_per_step"] == pytest.approx(1000 * report["training_seconds"] / 2)
    assert report["torch"] and report["transformers"] == transformers.__version__
    return report


def test_ner_writes_the_report(tmp_path, tiny_bert):
    data = tmp_path / "train.txt"
    data.write_text(CONLL)
    report = run(
        tmp_path,
        "ner",
        *("--data", str(data), "--validation-data", str(data), "--model", str(tiny_bert)),
        *("--batch-size", "2", "--sequence-length", "16"),
    )
    assert report["validation_sentences"] == 3 and report["validation_sentences_cut"] == 0
    for key in ("val_f1", "val_precision", "val_recall"):
        assert 0.0 <= report[key] <= 1.0


def test_qa_writes_the_report(tmp_path, tiny_bert):
    data = tmp_path / "train.json"
    data.write_text(json.dumps(squad_json()))
    report = run(
        tmp_path,
        "qa",
        *("--data", str(data), "--validation-data", str(data), "--model", str(tiny_bert)),
        # Windows of 16 pieces, 4 shared: every context is read in several windows.
        *("--batch-size", "2", "--sequence-length", "16", "--stride", "4", "--limit-validation", "3"),
    )
    assert report["validation_questions"] == 3 and report["validation_windows"] > 3
    for key in ("val_exact_match", "val_f1"):
        assert 0.0 <= report[key] <= 1.0


def test_a_directory_that_is_not_a_bert_is_refused(tmp_path):
    data = tmp_path / "train.txt"
    data.write_text(CONLL)
    arguments = ["ner", "--data", str(data), "--validation-data", str(data), "--steps", "1", "--output", "x.json"]
    with pytest.raises(FileNotFoundError, match="no such directory"):
        finetune_transformers.main([*arguments, "--model", str(tmp_path / "missing")])
    with pytest.raises(FileNotFoundError, match="not a Hugging Face BERT directory: it has no model.safetensors"):
        (tmp_path / "config.json").write_text('{"model_type": "bert"}')
        (tmp_path / "vocab.txt").write_text("[PAD]\n")
        finetune_transformers.main([*arguments, "--model", str(tmp_path)])
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(ValueError, match="holds a 'gpt2' model"):
        finetune_transformers.main([*arguments, "--model", str(tmp_path)])


def test_a_time_budget_alone_plans_the_schedule_from_timed_steps(tmp_path, tiny_bert):
    data = tmp_path / "train.txt"
    data.write_text(CONLL)
    output = tmp_path / "ner.json"
    report = finetune_transformers.main(
        ["ner", "--data", str(data), "--validation-data", str(data), "--model", str(tiny_bert)]
        + ["--batch-size", "2", "--minutes", "0.005", "--output", str(output)]
    )
    # The schedule spans the steps 10 timed steps say fit in 0.3 s; training stops at them or at the limit.
    assert 1 <= report["steps"] <= report["planned_steps"]
    assert report["steps"] == report["planned_steps"] or report["training_seconds"] >= 0.3
