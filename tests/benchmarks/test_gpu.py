"""`benchmarks.gpu` (Keras on JAX) and the state-carrying trainer it times with."""

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
    gpu.main(["--quick", "--steps", "2", "--repeats", "2", "--warmup", "1", "--output", str(output)])

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
        assert len(row["losses"]) == 1 + 2 * 2
        assert row["mfu"] == pytest.approx(row["achieved_gflops"] / (gpu.H100_BF16_TFLOPS * 1e3))
        assert row["mfu_measured"] > row["mfu"] > 0
    # Same initial weights and batches, no dropout: the same losses (bfloat16 compute).
    for row in rows[1:]:
        np.testing.assert_allclose(row["losses"], rows[0]["losses"], rtol=1e-2)
    table = (tmp_path / "gpu.md").read_text()
    assert "| 1 | tfllm |" in table and "| 2 | tfllm (fused attention) |" in table


def test_the_full_case_is_nanogpts_gpt2_small():
    assert gpu.GPT2_PADDED["vocabulary_size"] == 50304 and gpu.GPT2_PADDED["num_layers"] == 12
    assert (gpu.BATCH_SIZE, gpu.SEQUENCE_LENGTH) == (12, 1024)


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="checks the message on other backends")
def test_refuses_other_backends():
    with pytest.raises(SystemExit, match="KERAS_BACKEND=jax"):
        gpu.main(["--quick"])
