"""examples/generate.py continues prompts with a model trained by examples/train_gpt.py."""

import json

import pytest
import tensorflow as tf

from tests.examples.conftest import load_example
from tests.examples.test_examples import TINY_GPT
from tfllm.tokenizers.byte_pair_tokenizer import END_OF_TEXT


@pytest.fixture
def trained_gpt(shakespeare_sample, tmp_path):
    """The output directory of a few steps of examples/train_gpt.py on a tiny GPT."""
    output_dir = str(tmp_path / "gpt")
    load_example("train_gpt").main(
        ["--data", shakespeare_sample, "--output-dir", output_dir, "--steps", "4", "--steps-per-epoch", "2", *TINY_GPT]
    )
    return output_dir


# Slow (about 70 s): generation is covered by tests/generation and the exports by tests/export
# and the quickstart; this runs the example script end to end with `pytest -m slow`.
@pytest.mark.slow
def test_generate_from_a_trained_gpt(trained_gpt, tmp_path, capsys):
    generate = load_example("generate").main
    prompts = ["--prompt", "ROMEO:", "--prompt", "First Citizen:\nWe"]

    # Greedy, with an output file and an export.
    output, export_dir = tmp_path / "greedy.json", tmp_path / "saved_models" / "gpt"
    greedy = generate(["--model-dir", trained_gpt, *prompts, "--max-new-tokens", "12", "--output", str(output),
                       "--export-dir", str(export_dir)])
    assert len(greedy["completions"]) == 2
    for completion, prompt in zip(greedy["completions"], ["ROMEO:", "First Citizen:\nWe"]):
        assert completion["text"].startswith(prompt)
        assert 1 <= completion["new_tokens"] <= 12
        assert len(completion["text"]) > len(prompt)
    assert json.loads(output.read_text(encoding="utf-8"))["completions"] == greedy["completions"]
    printed = capsys.readouterr().out
    assert all(completion["text"] in printed for completion in greedy["completions"])
    # The export, capped at 12 new tokens, completes the prompts the same way (without the
    # end-of-text token, which the export drops).
    assert greedy["export_path"] == str(export_dir / "1")
    served = tf.saved_model.load(greedy["export_path"]).signatures["serving_default"]
    texts = served(prompt=tf.constant(["ROMEO:", "First Citizen:\nWe"]))["completion"].numpy()
    assert [prompt.encode() + text for prompt, text in zip(["ROMEO:", "First Citizen:\nWe"], texts)] == [
        completion["text"].split(END_OF_TEXT)[0].encode() for completion in greedy["completions"]
    ]

    # Sampling: the same seed gives the same completions, without XLA too; another seed differs.
    sampling = [*prompts, "--max-new-tokens", "16", "--sampler", "top_k", "--top-k", "50", "--temperature", "1.5",
                "--num-return-sequences", "2", "--repetition-penalty", "1.2"]
    texts = lambda result: [completion["text"] for completion in result["completions"]]  # noqa: E731
    first = texts(generate(["--model-dir", trained_gpt, *sampling, "--seed", "3"]))
    assert len(first) == 4
    assert texts(generate(["--model-dir", trained_gpt, *sampling, "--seed", "3", "--no-jit"])) == first
    assert texts(generate(["--model-dir", trained_gpt, *sampling, "--seed", "4"])) != first

    # Beam search, timed over repeated calls.
    beam = generate(["--model-dir", trained_gpt, "--prompt", "ROMEO:", "--max-new-tokens", "8", "--sampler", "beam",
                     "--num-beams", "3", "--no-repeat-ngram-size", "2", "--repeats", "2"])
    assert beam["completions"][0]["text"].startswith("ROMEO:")
    assert beam["new_tokens_per_second"] > 0

    # An option the sampler does not use is an error that names it.
    with pytest.raises(ValueError, match="temperature"):
        generate(["--model-dir", trained_gpt, "--temperature", "0.5"])
