"""Every `tfllm` subcommand on tiny settings: training runs once per module, the others use them."""

import json
import os
import struct

import pytest

import tfllm
from tests.data_files import story_lines
from tfllm import cli

TINY = ["--num-layers", "1", "--num-heads", "2", "--hidden-dim", "32", "--intermediate-dim", "64",
        "--sequence-length", "32", "--batch-size", "8"]


def run(capsys, *argv):
    """`tfllm ARGV` in-process: (exit status, stdout, stderr)."""
    status = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def last_json(out):
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "stories.txt"
    path.write_text("".join(story_lines() * 6), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def gpt_run(corpus, tmp_path_factory):
    directory = tmp_path_factory.mktemp("runs") / "gpt"
    assert cli.main(["train-gpt", "--data", corpus, "--output-dir", str(directory), "--steps", "4",
                     "--steps-per-epoch", "2", "--vocabulary-size", "300", *TINY]) == 0
    return str(directory)


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("runs") / "reviews"
    data = tfllm.data.samples.REVIEWS
    assert cli.main(["finetune", "classifier", "--data", data, "--output-dir", str(directory), "--steps", "3",
                     "--vocabulary-size", "300", *TINY]) == 0
    return str(directory)


def test_train_gpt_writes_a_run(gpt_run):
    for name in ("model.keras", "tokenizer/vocab.json", "history.csv", "metrics.json"):
        assert os.path.exists(os.path.join(gpt_run, name)), name


def test_pretrain_bert_runs_its_program(capsys, corpus, tmp_path):
    status, out, _ = run(capsys, "pretrain-bert", "--data", corpus, "--output-dir", tmp_path, "--steps", "2",
                         "--steps-per-epoch", "1", "--vocabulary-size", "300", *TINY)
    assert status == 0 and os.path.exists(tmp_path / "backbone.keras")
    assert "val_mlm_accuracy" in out
    status, out, _ = run(capsys, "export", "masked-lm", tmp_path, tmp_path / "saved_models" / "fill_mask")
    assert status == 0 and os.path.isfile(os.path.join(last_json(out)["export_path"], "saved_model.pb"))


def test_generate_and_stream(capsys, gpt_run):
    status, out, _ = run(capsys, "generate", gpt_run, "--prompt", "The lamp", "--max-new-tokens", "8")
    assert status == 0 and "The lamp" in out
    status, streamed, _ = run(capsys, "generate", gpt_run, "--prompt", "The lamp", "--max-new-tokens", "8", "--stream")
    run_ = tfllm.training.harness.load_run(gpt_run)
    expected = tfllm.generation.generate_text(
        run_.model, run_.tokenizer, "The lamp", 8, stop_token_ids=run_.tokenizer.end_of_text_id
    )
    assert status == 0 and streamed.strip("\n") == expected


def test_export_and_audit(capsys, gpt_run, classifier_run, tmp_path):
    status, out, _ = run(capsys, "export", "gpt", gpt_run, tmp_path / "saved_models" / "gpt", "--max-new-tokens", "8")
    path = last_json(out)["export_path"]
    assert status == 0 and path.endswith(os.path.join("gpt", "1"))
    status, out, _ = run(capsys, "audit", path)
    assert status == 0 and "PyFunc" not in out.split("ops:")[-1].split("\n")[0]
    status, out, _ = run(capsys, "export", "classifier", classifier_run, tmp_path / "saved_models" / "reviews")
    assert status == 0 and os.path.isfile(os.path.join(last_json(out)["export_path"], "saved_model.pb"))


def test_evaluate_bleu_and_rouge_print_one_json_object(capsys, tmp_path):
    hypotheses, references = tmp_path / "h.txt", tmp_path / "r.txt"
    hypotheses.write_text("the cat sat on the mat\n猫坐在垫子上\n", encoding="utf-8")
    references.write_text("the cat sat on a mat\n猫坐在地毯上\n", encoding="utf-8")
    status, out, _ = run(capsys, "evaluate", "bleu", "--hypotheses", hypotheses, "--references", references, "--tokenize", "zh")
    bleu = last_json(out)
    assert status == 0 and bleu["bleu"] == pytest.approx(
        tfllm.evaluation.corpus_bleu(hypotheses.read_text().splitlines(), references.read_text().splitlines(), "zh")["bleu"]
    )
    status, out, _ = run(capsys, "evaluate", "rouge", "--hypotheses", hypotheses, "--references", references)
    assert status == 0 and set(last_json(out)) == {"rouge1", "rouge2", "rougeL"}
    references.write_text("only one line\n", encoding="utf-8")
    status, _, err = run(capsys, "evaluate", "bleu", "--hypotheses", hypotheses, "--references", references)
    assert status == 2 and err.strip() == "tfllm: error: 2 hypotheses but 1 references: every hypothesis needs its reference."


def test_evaluate_perplexity_and_classifier(capsys, gpt_run, classifier_run, corpus):
    status, out, err = run(capsys, "evaluate", "perplexity", gpt_run, "--data", corpus, "--stride", "16")
    result = last_json(out)
    assert status == 0 and result["tokens"] > 100 and result["perplexity"] > 1 and "perplexity [" in err
    status, out, _ = run(capsys, "evaluate", "classifier", classifier_run, "--data", tfllm.data.samples.REVIEWS)
    result = last_json(out)
    assert status == 0 and result["examples"] == 128 and len(result["confusion_matrix"]) == 2
    assert sum(map(sum, result["confusion_matrix"])) == 128


def test_plot_attention_attribute(capsys, gpt_run, classifier_run, tmp_path):
    status, out, _ = run(capsys, "plot", gpt_run, "--output", tmp_path / "curves")
    pngs = last_json(out)["pngs"]
    assert status == 0 and os.path.basename(pngs[0]) == "curves.png" and any(p.endswith("loss.png") for p in pngs)
    status, out, _ = run(capsys, "attention", gpt_run, "--text", "The lamp was lit", "--output", tmp_path / "a.png")
    result = last_json(out)
    assert status == 0 and result["layers"] == 1 and result["heads"] == 2 and _png(result["png"])
    status, out, _ = run(capsys, "attribute", classifier_run, "--text", "a charming film", "--output", tmp_path / "why")
    result = last_json(out)
    assert status == 0 and _png(result["png"]) and open(result["html"], encoding="utf-8").read().count("<span") == len(result["tokens"])


def test_presets_and_summary(capsys):
    status, out, _ = run(capsys, "presets", "--no-count")
    assert status == 0 and "`gpt2-small`" in out and "`bert-base`" in out
    status, out, _ = run(capsys, "summary", "gpt-test")
    assert status == 0 and "transformer_block_1" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["plot", "/nonexistent"], "tfllm: error: '/nonexistent' is not a directory."),
        (["evaluate", "perplexity"], "tfllm: error: `tfllm evaluate perplexity` needs a RUN directory and --data."),
        (["summary", "gpt5"], "tfllm: error: Unknown preset 'gpt5'."),
    ],
)
def test_errors_are_one_line(capsys, argv, message):
    status, _, err = run(capsys, *argv)
    assert status == 2 and err.strip().startswith(message) and len(err.strip().splitlines()) == 1


def test_a_run_without_logs_and_an_unknown_command(capsys, tmp_path):
    status, _, err = run(capsys, "plot", tmp_path)
    assert status == 2 and "has no training logs" in err
    with pytest.raises(SystemExit) as exit_:
        cli.main(["frobnicate"])
    assert exit_.value.code == 2 and "invalid choice: 'frobnicate'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["evaluate", "bleu", "--no-such-option"])


def _png(path):
    with open(path, "rb") as file:
        header = file.read(24)
    return header[:8] == b"\x89PNG\r\n\x1a\n" and min(struct.unpack(">II", header[16:24])) >= 200
