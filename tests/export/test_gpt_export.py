"""The GPT export: text in and text out in a fresh process, equal to `generate`, on any input."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tests.export.conftest import GPT_MAX_NEW_TOKENS, run_fresh
from tfllm.export import GPTServer, export_gpt, read_warmup_requests
from tfllm.generation import generate

PROMPTS = ["ROMEO:", "First Citizen:\nBefore we proceed any further, hear me", "O"]


def _generate_options(rows, max_new_tokens, temperature=1.0, top_k=0, top_p=1.0, seed=0):
    return {
        "max_new_tokens": [max_new_tokens] * rows,
        "temperature": [temperature] * rows,
        "top_k": [top_k] * rows,
        "top_p": [top_p] * rows,
        "seed": [seed] * rows,
    }


def _reference_completions(model, tokenizer, prompts, max_new_tokens):
    """Greedy continuations by `tfllm.generation.generate`, cut at the first end-of-text."""
    eot = tokenizer.end_of_text_id
    completions = []
    for prompt in prompts:
        ids = tokenizer([prompt]).to_list()
        output = np.asarray(generate(model, ids, max_new_tokens, stop_token_ids=[eot], pad_token_id=eot))
        new = list(output[0, len(ids[0]) :])
        new = new[: new.index(eot)] if eot in new else new
        completions.append(tokenizer.detokenize([new]).numpy()[0].decode("utf-8"))
    return completions


def test_in_a_fresh_process_greedy_equals_generate_and_bad_input_has_defined_answers(gpt_bundle, tmp_path):
    model, tokenizer, path = gpt_bundle
    long_prompt = "To be, or not to be, that is the question. " * 40  # far beyond the 48-token context
    odd = ["", {"bytes_hex": "fffe61c3"}, "😀 emoji \u0000\u0007 control\r\n", long_prompt]
    requests = [
        ["serving_default", {"prompt": PROMPTS}],
        ["generate", {"prompt": PROMPTS, **_generate_options(3, 5, temperature=0.0)}],
        ["serving_default", {"prompt": odd}],
        # Above the cap (clamped to it), negative (empty), zero (empty), the cap.
        ["generate", {"prompt": ["a", "a", "a", "a"], **_generate_options(4, 0), "max_new_tokens": [1000, -5, 0, 12]}],
        # Out-of-range sampling options: top_p 0 and 7 (off), top_k -3 (off), temperature -1 (greedy).
        ["generate", {"prompt": ["a", "b"], **_generate_options(2, 3, temperature=-1.0, top_k=-3, top_p=0.0)}],
        ["generate", {"prompt": ["a"], **_generate_options(1, 3, top_p=7.0)}],
        ["serving_default", {"prompt": []}],
        ["score", {"text": odd}],
        ["score", {"text": []}],
    ]
    answers, modules = run_fresh(path, requests, tmp_path)
    assert not [name for name in modules if name.split(".")[0] in ("tfllm", "keras_hub")]
    assert answers[0]["completion"] == _reference_completions(model, tokenizer, PROMPTS, GPT_MAX_NEW_TOKENS)
    # temperature 0 is greedy; 5 new tokens are a prefix of the 12.
    assert answers[1]["completion"] == _reference_completions(model, tokenizer, PROMPTS, 5)

    assert len(answers[2]["completion"]) == 4  # and valid UTF-8: the runner decodes it strictly
    capped, negative, zero, at_the_cap = answers[3]["completion"]
    assert capped == at_the_cap and capped and negative == "" and zero == ""
    assert len(answers[4]["completion"]) == 2 and len(answers[5]["completion"]) == 1
    assert answers[6] == {"completion": []}
    assert len(answers[7]["log_likelihood"]) == 4 and answers[7]["num_tokens"][0] == 0
    # The long text keeps its last 48 tokens (the context).
    assert answers[7]["num_tokens"][3] == 48
    assert answers[8] == {"log_likelihood": [], "num_tokens": []}


def test_the_export_is_versioned_configured_warmed_up_and_audited(gpt_bundle):
    _, _, path = gpt_bundle
    base = os.path.dirname(path)
    assert os.path.basename(path) == "1"
    assert sorted(os.listdir(base)) == ["1"]
    with open(os.path.join(os.path.dirname(base), "models.config"), encoding="utf-8") as file:
        config = file.read()
    assert 'name: "gpt"' in config and 'base_path: "/models/gpt"' in config
    logs = read_warmup_requests(os.path.join(path, "assets.extra", "tf_serving_warmup_requests"))
    signatures = {log.predict_log.request.model_spec.signature_name: log.predict_log.request for log in logs}
    assert set(signatures) == {"serving_default", "generate", "score"}
    assert set(signatures["generate"].inputs) == {"prompt", "max_new_tokens", "temperature", "top_k", "top_p", "seed"}
    loaded = tf.saved_model.load(path)
    # Every warm-up record runs (a failing one would fail the model's load in TF Serving).
    for name, request in signatures.items():
        inputs = {key: tf.make_ndarray(value) for key, value in request.inputs.items()}
        loaded.signatures[name](**{key: tf.constant(value) for key, value in inputs.items()})


def test_sampling_is_reproducible_per_row_and_changes_with_the_seed(gpt_bundle):
    _, _, path = gpt_bundle
    function = tf.saved_model.load(path).signatures["generate"]

    def complete(prompts, seed):
        options = _generate_options(len(prompts), GPT_MAX_NEW_TOKENS, temperature=1.5, top_k=50, top_p=0.95, seed=seed)
        options = {key: tf.constant(value) for key, value in options.items()}
        return [text.decode() for text in function(prompt=tf.constant(prompts), **options)["completion"].numpy()]

    first = complete(PROMPTS, seed=1)
    assert complete(PROMPTS, seed=1) == first
    # A row's sample does not depend on the rest of the batch.
    assert complete(PROMPTS[:1], seed=1) == first[:1]
    assert complete(PROMPTS, seed=2) != first


def test_score_is_the_models_log_likelihood(gpt_bundle):
    model, tokenizer, path = gpt_bundle
    texts = ["ROMEO: What say you?", "", "a"]
    result = tf.saved_model.load(path).signatures["score"](text=tf.constant(texts))
    for text, log_likelihood, num_tokens in zip(texts, result["log_likelihood"].numpy(), result["num_tokens"].numpy()):
        ids = [tokenizer.end_of_text_id] + tokenizer([text]).to_list()[0]
        assert num_tokens == len(ids) - 1
        if num_tokens == 0:
            assert log_likelihood == 0
            continue
        logits = model.predict_on_batch({"token_ids": np.array([ids[:-1]]), "padding_mask": np.ones((1, len(ids) - 1))})
        log_probabilities = tf.nn.log_softmax(logits[0]).numpy()
        expected = sum(log_probabilities[i, token] for i, token in enumerate(ids[1:]))
        np.testing.assert_allclose(log_likelihood, expected, rtol=1e-4)


def test_a_long_prompt_keeps_its_most_recent_tokens(gpt_bundle):
    model, tokenizer, path = gpt_bundle
    prompt = "Before we proceed any further, hear me speak. " * 10
    served = tf.saved_model.load(path).signatures["serving_default"](prompt=tf.constant([prompt]))
    ids = tokenizer([prompt]).to_list()[0]
    recent = ids[-(48 - GPT_MAX_NEW_TOKENS) :]
    expected = _reference_completions(model, tokenizer, [tokenizer.detokenize([recent]).numpy()[0].decode()], GPT_MAX_NEW_TOKENS)
    assert tokenizer([expected[0]]).to_list() == tokenizer([served["completion"].numpy()[0].decode()]).to_list()


def test_versions_are_immutable_and_numbered(gpt_bundle, tmp_path):
    model, tokenizer, _ = gpt_bundle
    base = tmp_path / "saved_models" / "gpt"
    first = export_gpt(model, tokenizer, base, max_new_tokens=2, models_config=False)
    second = export_gpt(model, tokenizer, base, max_new_tokens=2, models_config=False)
    assert [os.path.basename(first), os.path.basename(second)] == ["1", "2"]
    with pytest.raises(FileExistsError, match="immutable"):
        export_gpt(model, tokenizer, base, version=2, max_new_tokens=2, models_config=False)
    assert not os.path.exists(tmp_path / "saved_models" / "models.config")


@pytest.mark.parametrize(
    "options, match",
    [
        ({"max_new_tokens": 48}, "max_new_tokens"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"default_max_new_tokens": 99}, "default_max_new_tokens"),
        ({"sampler": "beam"}, "sampler"),
        ({"temperature": 0}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"stop_token_ids": [10_000]}, "stop_token_ids"),
    ],
)
def test_bad_export_options_raise(gpt_bundle, options, match):
    model, tokenizer, _ = gpt_bundle
    with pytest.raises(ValueError, match=match):
        GPTServer(model, tokenizer, **{"max_new_tokens": 8, **options})
