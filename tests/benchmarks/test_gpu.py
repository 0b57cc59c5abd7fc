"""`benchmarks.gpu` (Keras on JAX) and the state-carrying trainer it times with."""

import gzip
import json

import keras
import numpy as np
import pytest

from benchmarks import gpu, training

on_jax = pytest.mark.skipif(keras.backend.backend() != "jax", reason="benchmarks.gpu runs Keras on JAX")


@on_jax
def test_carried_steps_train_exactly_like_train_on_batch():
    spec = training.case("tiny", "gpt", training.TINY_GPT, 2, 32)
    batches = training.make_batches(spec)
    keras.utils.set_random_seed(0)
    carried = training.compile_model(training.build_tfllm(spec), spec, "tfllm")
    reference = training.compile_model(training.build_tfllm(spec), spec, "tfllm")
    reference.set_weights(carried.get_weights())

    trainer = training._Trainer(carried, batches)
    trainer.run(2)
    trainer.run(3)
    trainer.finish()
    expected = [
        reference.train_on_batch(*batches[i % len(batches)], return_dict=True)["loss"] for i in range(5)
    ]

    # Each logged loss is that step's own (not a running mean), and the model learns.
    np.testing.assert_allclose(trainer.losses, expected, rtol=1e-5)
    assert expected[-1] < expected[0]
    # `finish` wrote the carried state back: weights and optimizer as after train_on_batch.
    assert int(carried.optimizer.iterations) == 5
    for mine, theirs in zip(carried.weights, reference.weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(theirs), atol=1e-6)


@on_jax
def test_quick_run_writes_both_libraries(tmp_path):
    output = tmp_path / "gpu"
    gpu.main(
        ["--quick", "--steps", "2", "--repeats", "2", "--warmup", "1", "--profile-steps", "1", "--output", str(output)]
    )

    report = json.loads((tmp_path / "gpu.json").read_text())
    rows = report["training"]
    # tfllm with its own attention, then with the fused op, each against keras-hub.
    assert [(row["pair"], row["library"]) for row in rows] == [
        (1, "tfllm"), (1, "keras-hub"), (2, "tfllm"), (2, "keras-hub")
    ]
    assert [row["tfllm_options"]["fused_attention"] for row in rows[::2]] == [False, True]
    assert report["settings"]["complete"] is True and "Partial" not in (tmp_path / "gpu.md").read_text()
    assert report["measured_matmul_tflops"] > 0 and report["settings"]["peak_tflops"] == gpu.H100_BF16_TFLOPS
    for row in rows:
        assert row["precision"] == "mixed_bfloat16" and row["dropout"] == 0
        # Warm-up and timed steps only: the profiled step is not part of the measurement.
        assert len(row["losses"]) == 1 + 2 * 2
        # A CPU run: the profile ran, and its trace holds no GPU kernels.
        assert row["profile"] == {"steps": 1, "kernels_per_step": 0}
        assert row["mfu"] == pytest.approx(row["achieved_gflops"] / (gpu.H100_BF16_TFLOPS * 1e3))
        assert row["mfu_measured"] == pytest.approx(row["achieved_gflops"] / (report["measured_matmul_tflops"] * 1e3))
        assert row["mfu_measured"] > row["mfu"] > 0  # a CPU's matmul rate is far below an H100's
    # Same initial weights and batches, no dropout: the same losses (bfloat16 compute).
    for row in rows[1:]:
        np.testing.assert_allclose(row["losses"], rows[0]["losses"], rtol=1e-2)
    table = (tmp_path / "gpu.md").read_text()
    assert "| 1 | tfllm |" in table and "| 2 | tfllm (fused attention) |" in table
    assert "Profile, pair 2, tfllm (fused attention), 1 steps under `jax.profiler`: no GPU kernels" in table


def write_trace(path, events):
    with gzip.open(path, "wt") as file:
        json.dump({"displayTimeUnit": "ns", "traceEvents": events}, file)


def test_kernel_summary_sums_the_gpu_streams_of_a_trace(tmp_path):
    def kernel(tid, name, start, duration, pid=2):
        return {"ph": "X", "pid": pid, "tid": tid, "name": name, "ts": start, "dur": duration}

    events = [
        {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/host:CPU"}},
        {"ph": "M", "name": "process_name", "pid": 2, "args": {"name": "/device:GPU:0"}},
        {"ph": "M", "name": "thread_name", "pid": 2, "tid": 7, "args": {"name": "Stream #7(Compute)"}},
        {"ph": "M", "name": "thread_name", "pid": 2, "tid": 8, "args": {"name": "XLA Ops"}},
        kernel(1, "host work", 0, 1000, pid=1),
        kernel(8, "fusion.3", 0, 500),  # the derived op line: not counted again
        kernel(7, "nvjet_tst_128x256_64x4_1x2_h_bz_coopA_TNT", 0, 100),
        kernel(7, "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16", 100, 50),
        kernel(7, "loop_add_fusion", 120, 10),  # overlaps the attention kernel: busy once
        kernel(7, "input_reduce_fusion", 200, 20),
        kernel(7, "nvjet_tst_128x256_64x4_1x2_h_bz_coopA_TNT", 300, 100),
    ]
    path = tmp_path / "x.trace.json.gz"
    write_trace(path, events)

    summary = gpu.kernel_summary(str(path), steps=2)

    assert summary["kernels_per_step"] == 2.5
    assert summary["busy_ms_per_step"] == pytest.approx((150 + 20 + 100) / 1000 / 2)
    assert summary["span_ms_per_step"] == pytest.approx(400 / 1000 / 2)
    assert summary["categories"] == pytest.approx(
        {"matrix products": 0.1, "attention (cuDNN)": 0.025, "reductions": 0.01, "element-wise and other fusions": 0.005}
    )
    top = summary["top"]
    assert [kernel["category"] for kernel in top] == [
        "matrix products", "attention (cuDNN)", "reductions", "element-wise and other fusions"
    ]
    assert top[0]["launches_per_step"] == 1 and top[0]["ms_per_step"] == pytest.approx(0.1)
    assert sum(kernel["share"] for kernel in top) == pytest.approx(1)

    write_trace(path, events[:1] + events[4:5])
    assert gpu.kernel_summary(str(path), steps=2) == {"kernels_per_step": 0}


@pytest.mark.parametrize(
    "name, category",
    [
        ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", "matrix products"),
        ("gemm_fusion_dot_12", "matrix products"),
        ("cudnn_generated_fort_native_sdpa_sm90_flash_bprop_wgmma_f16_knob_3", "attention (cuDNN)"),
        ("input_reduce_fusion_4", "reductions"),
        ("loop_multiply_fusion", "element-wise and other fusions"),
        ("wrapped_convert", "element-wise and other fusions"),
        ("transpose_fusion_1", "copies"),
        ("something_new", "other"),
    ],
)
def test_kernel_category(name, category):
    assert gpu.kernel_category(name) == category


def test_the_full_case_is_nanogpts_gpt2_small():
    assert gpu.GPT2_PADDED["vocabulary_size"] == 50304 and gpu.GPT2_PADDED["num_layers"] == 12
    assert (gpu.BATCH_SIZE, gpu.SEQUENCE_LENGTH) == (12, 1024)


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="checks the message on other backends")
def test_refuses_other_backends():
    with pytest.raises(SystemExit, match="KERAS_BACKEND=jax"):
        gpu.main(["--quick"])
