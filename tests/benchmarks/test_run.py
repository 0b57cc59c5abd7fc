"""The benchmark entry point, in its quick mode, on one tiny training case."""

import json
import re
import statistics

import numpy as np
import pytest

from benchmarks import kernels, memory, profile_training, run, step_products, training


def test_quick_training_case_writes_json_and_markdown(tmp_path):
    output = tmp_path / "benchmarks"
    run.main(
        ["--quick", "--cases", "small", "--precisions", "float32", "--dropouts", "0", "--xla", "on"]
        + ["--matmul-size", "256", "--no-memory", "--output", str(output)]
    )

    report = json.loads((tmp_path / "benchmarks.json").read_text())
    rows = report["training"]
    assert [row["library"] for row in rows] == ["tfllm", "keras-hub"]
    peak = report["matmul_peak_gflops"]["float32"]
    for row in rows:
        assert row["name"] == "tiny small" and row["xla"] is True and row["precision"] == "float32"
        # The figures follow from the timed rounds: the median step, tokens, FLOPs, MFU.
        assert len(row["round_seconds"]) == report["settings"]["repeats"]
        assert row["seconds_per_step"] == statistics.median(row["round_seconds"])
        assert row["tokens_per_second"] == row["batch_size"] * row["sequence_length"] / row["seconds_per_step"]
        assert row["achieved_gflops"] == pytest.approx(row["flops_per_token"] * row["tokens_per_second"] / 1e9)
        assert row["mfu"] == pytest.approx(row["achieved_gflops"] / peak)
        # warm-up + repeats x steps, all recorded.
        assert len(row["losses"]) == report["settings"]["warmup"] + report["settings"]["repeats"]
    assert rows[0]["flops_per_token"] == rows[1]["flops_per_token"]  # one model, two libraries
    ratios = [theirs / mine for mine, theirs in zip(rows[0]["round_seconds"], rows[1]["round_seconds"])]
    assert rows[0]["speedup_vs_keras_hub"] == pytest.approx(statistics.median(ratios))
    # Same initial weights, same batches, no dropout: the two libraries train identically.
    tfllm_losses, keras_hub_losses = rows[0]["losses"], rows[1]["losses"]
    assert max(abs(a - b) for a, b in zip(tfllm_losses, keras_hub_losses)) < 1e-3
    (best,) = report["best_xla"]  # one setting: its own best
    assert best["speedup"] == pytest.approx(rows[0]["tokens_per_second"] / rows[1]["tokens_per_second"])
    assert report["matmul_peak_gflops"]["float32"] > 0 and report["matmul_peak_gflops"]["bfloat16"] > 0
    assert report["memory"] == [] and report["settings"]["complete"] is True

    table = (tmp_path / "benchmarks.md").read_text()
    assert "| tiny small (batch 4, seq 32) | float32 | 0 | on |" in table
    assert "Each library at its best XLA setting" in table


@pytest.mark.slow  # benchmark tooling; CI's time goes to the headline behaviours
def test_memory_measure_reports_peak_over_imports():
    spec = training.case("tiny", "gpt", training.TINY_GPT, 2, 16, xla=False)
    result = memory.measure_in_subprocess(spec, "tfllm", steps=1)
    assert result["peak_rss_mib"] >= result["rss_after_imports_mib"] > 0
    assert result["peak_over_imports_mib"] == result["peak_rss_mib"] - result["rss_after_imports_mib"]


def test_flops_per_token_follows_nanogpt():
    spec = training.case("small", "gpt", training.SMALL_GPT, 16, 256)
    model = training.build_tfllm(spec)
    vocab, hidden, ff, layers = 8192, 256, 1024, 4
    norms, attention = 4 * hidden, (3 * hidden * hidden + 3 * hidden) + (hidden * hidden + hidden)
    per_layer = norms + attention + (2 * hidden * ff + ff + hidden)
    # nanoGPT's N: every parameter but the position embeddings (the tied token embedding counts).
    n = vocab * hidden + layers * per_layer + 2 * hidden
    assert training.flops_per_token(spec, model) == 6 * n + 12 * layers * hidden * 256


@pytest.mark.slow  # benchmark tooling; CI's time goes to the headline behaviours
def test_bert_pair_starts_equal_and_trains_identically_without_dropout():
    # The BERT case copies tfllm's weights into keras-hub's classifier; without dropout the
    # two must then be one model: the same logits and the same losses step after step.
    spec = training.case("tiny", "bert", training.TINY_BERT, 4, 32, dropout=0.0, xla=False)
    models = training.build_pair(spec)
    batches = training.make_batches(spec, num_batches=3)
    inputs = batches[0][0]
    np.testing.assert_allclose(
        models["tfllm"].predict_on_batch(inputs), models["keras-hub"].predict_on_batch(inputs), atol=1e-5
    )
    losses = {
        name: [float(model.train_on_batch(x, y, return_dict=True)["loss"]) for x, y in batches]
        for name, model in models.items()
    }
    np.testing.assert_allclose(losses["tfllm"], losses["keras-hub"], atol=1e-4)


@pytest.mark.slow  # benchmark tooling; CI's time goes to the headline behaviours
def test_profile_training_lists_each_librarys_kernels(capsys):
    profile_training.main(["--quick", "--steps", "1", "--top", "200"])
    output = capsys.readouterr().out
    tfllm_part, keras_hub_part = output.split("\nkeras-hub: ")
    tfllm_part = tfllm_part.split("\ntfllm: ")[1]
    for part in (tfllm_part, keras_hub_part):
        assert "ms/step unprofiled" in part
        assert "MatMul" in part
    # The cross-entropy: Keras's kernel for keras-hub; tfllm's `SparseCrossEntropy` is a
    # log-sum-exp (the step's only `Log`) with its gradient written out (the only `OneHot`).
    assert "SparseSoftmaxCrossEntropyWithLogits" in keras_hub_part
    assert "SparseSoftmaxCrossEntropyWithLogits" not in tfllm_part
    assert re.search(r"^Log ", tfllm_part, re.MULTILINE) and re.search(r"^OneHot ", tfllm_part, re.MULTILINE)


@pytest.mark.slow  # benchmark tooling; CI's time goes to the headline behaviours
def test_kernel_timings_cover_every_kernel_with_and_without_xla():
    results = kernels.main(["--quick", "--repeats", "1"])
    expected = kernels.kernels(128, 32, 512, 2, 32) + kernels.block_kernels(4, 32, 32, 2, 8)
    assert [row["kernel"] for row in results] == [name for name, *_ in expected]
    assert all(row["plain_seconds"] > 0 and row["xla_seconds"] > 0 for row in results)



def test_step_products_add_up_to_the_model_flops():
    # Every dense product three times (forward and two gradients), six attention products per
    # layer, the tied logits three times: nanoGPT's 6N + 12·L·H·T per token, less the masked
    # quarter of the attention square that tfllm's blocks of 128 skip at 256 tokens.
    config, batch, length = training.SMALL_GPT, 16, 256
    layers, hidden, ff, vocab = 4, 256, 1024, 8192
    tokens = batch * length
    dense_and_logits = 6 * tokens * (layers * (4 * hidden * hidden + 2 * hidden * ff) + vocab * hidden)
    square_attention = 12 * layers * hidden * length * tokens
    totals = {}
    for library in training.LIBRARIES:
        counts = step_products.step_products(config, batch, length, library)
        totals[library] = sum(step_products.flops(product) * n for product, n in counts.items())
    assert totals["keras-hub"] == dense_and_logits + square_attention
    assert totals["tfllm"] == dense_and_logits + square_attention * 3 // 4


@pytest.mark.slow
def test_step_products_time_both_libraries():
    result = step_products.main(["--quick", "--repeats", "1", "--rounds", "1"])
    for library in training.LIBRARIES:
        assert result[library]["products_seconds"] > 0 and result[library]["step_seconds"] > 0
    assert result["ceiling"] > 0
