"""The GPT export: text in and text out in a fresh process, equal to `generate`, on any input."""

import math
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.export.conftest import GPT_MAX_NEW_TOKENS, run_fresh
from tfllm.export import GPTServer, audit, export_gpt, predict, read_warmup_requests
from tfllm.generation import generate

PROMPTS = ["Mara:", "Once there was a lighthouse keeper named Mara who lived on", "O"]
CONTEXT = 48  # the exported model's max_sequence_length


def _generate_options(rows, max_new_tokens, temperature=1.0, top_k=0, top_p=1.0, seed=0):
    return {
        "max_new_tokens": [max_new_tokens] * rows,
        "temperature": [temperature] * rows,
        "top_k": [top_k] * rows,
        "top_p": [top_p] * rows,
        "seed": [seed] * rows,
    }


def _reference_completions(model, tokenizer, prompts, max_new_tokens):
    """Greedy continuations by `tfllm.generation.generate`, cut at the first end-of-text, of
    what the server should feed the model: each prompt's last `CONTEXT - max_new_tokens` tokens,
    the end-of-text token alone for an empty prompt."""
    eot = tokenizer.end_of_text_id
    keep = CONTEXT - max_new_tokens
    windows = []
    for prompt in prompts:  # str, or bytes that need not be UTF-8
        ids = tokenizer(tf.constant([prompt])).to_list()[0]
        windows.append(ids[-keep:] if ids else [eot])
    output = generate(model, windows, max_new_tokens, stop_token_ids=[eot], pad_token_id=eot, jit_compile=False)
    completions = []
    for row, window in zip(np.asarray(output), windows):
        new = list(row[len(window) : len(window) + max_new_tokens])
        new = new[: new.index(eot)] if eot in new else new
        completions.append(tokenizer.detokenize([new]).numpy()[0].decode("utf-8"))
    return completions


def _reference_score(model, tokenizer, text):
    """(log-likelihood, number of tokens scored) of `text` after the end-of-text token, by the
    Keras model, over the last `CONTEXT` tokens scored."""
    ids = ([tokenizer.end_of_text_id] + tokenizer(tf.constant([text])).to_list()[0])[-(CONTEXT + 1) :]
    if len(ids) == 1:
        return 0.0, 0
    logits = model.predict_on_batch({"token_ids": np.array([ids[:-1]]), "padding_mask": np.ones((1, len(ids) - 1))})
    log_probabilities = tf.nn.log_softmax(np.asarray(logits[0], "float64")).numpy()
    return sum(log_probabilities[i, token] for i, token in enumerate(ids[1:])), len(ids) - 1


def test_in_a_fresh_process_greedy_equals_generate_and_bad_input_has_defined_answers(gpt_bundle, tmp_path):
    model, tokenizer, path = gpt_bundle
    long_prompt = "To be, or not to be, that is the question. " * 40  # far beyond the 48-token context
    odd_bytes = bytes.fromhex("fffe61c3")  # not UTF-8
    odd = ["", {"bytes_hex": odd_bytes.hex()}, "😀 emoji \u0000\u0007 control\r\n", long_prompt]
    odd_texts = ["", odd_bytes, odd[2], long_prompt]
    sampled = _generate_options(1, 3, temperature=1.0, seed=5)
    requests = {
        "default": ["serving_default", {"prompt": PROMPTS}],
        "temperature 0": ["generate", {"prompt": PROMPTS, **_generate_options(3, 5, temperature=0.0)}],
        "odd prompts": ["serving_default", {"prompt": odd}],
        # Above the cap (clamped to it), negative (empty), zero (empty), the cap.
        "lengths": ["generate", {"prompt": ["a", "a", "a", "a"], **_generate_options(4, 0, temperature=0.0), "max_new_tokens": [1000, -5, 0, 12]}],
        # Out-of-range sampling options: top_p 0 and 7 (off), top_k -3 (off), temperature -1 (greedy).
        "temperature -1": ["generate", {"prompt": ["a", "b"], **_generate_options(2, 3, temperature=-1.0, top_k=-3, top_p=0.0)}],
        "top_p 7": ["generate", {"prompt": ["a"], **sampled, "top_p": [7.0]}],
        "top_k -3": ["generate", {"prompt": ["a"], **sampled, "top_k": [-3]}],
        "no filter": ["generate", {"prompt": ["a"], **sampled}],
        "no prompts": ["serving_default", {"prompt": []}],
        "odd scores": ["score", {"text": odd}],
        "no texts": ["score", {"text": []}],
    }
    answers, modules = run_fresh(path, list(requests.values()), tmp_path)
    answers = dict(zip(requests, answers))
    assert not [name for name in modules if name.split(".")[0] in ("tfllm", "keras_hub")]
    assert answers["default"]["completion"] == _reference_completions(model, tokenizer, PROMPTS, GPT_MAX_NEW_TOKENS)
    # temperature 0 is greedy.
    assert answers["temperature 0"]["completion"] == _reference_completions(model, tokenizer, PROMPTS, 5)

    # Empty: the end-of-text token alone; invalid UTF-8 read as U+FFFD; control characters
    # kept; a long prompt keeps its last tokens. The completions are valid UTF-8 (the runner
    # decodes them strictly).
    expected = _reference_completions(model, tokenizer, odd_texts, GPT_MAX_NEW_TOKENS)
    assert answers["odd prompts"]["completion"] == expected
    a_12 = _reference_completions(model, tokenizer, ["a"], GPT_MAX_NEW_TOKENS)[0]
    assert a_12 and answers["lengths"]["completion"] == [a_12, "", "", a_12]
    assert answers["temperature -1"]["completion"] == _reference_completions(model, tokenizer, ["a", "b"], 3)
    # Filters that are off draw exactly the unfiltered sample of the same seed.
    unfiltered = answers["no filter"]["completion"]
    assert answers["top_p 7"]["completion"] == answers["top_k -3"]["completion"] == unfiltered
    assert answers["no prompts"] == {"completion": []}

    scores = [_reference_score(model, tokenizer, text) for text in odd_texts]
    assert answers["odd scores"]["num_tokens"] == [n for _, n in scores]
    assert scores[0][1] == 0 and scores[3][1] == CONTEXT  # the long text keeps its last 48 tokens
    np.testing.assert_allclose(answers["odd scores"]["log_likelihood"], [ll for ll, _ in scores], rtol=1e-4, atol=1e-4)
    assert answers["no texts"] == {"log_likelihood": [], "num_tokens": []}


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
    texts = ["Mara: What do you see?", "", "a"]
    result = tf.saved_model.load(path).signatures["score"](text=tf.constant(texts))
    expected = [_reference_score(model, tokenizer, text) for text in texts]
    assert result["num_tokens"].numpy().tolist() == [n for _, n in expected]
    assert result["log_likelihood"].numpy()[1] == 0
    np.testing.assert_allclose(result["log_likelihood"].numpy(), [ll for ll, _ in expected], rtol=1e-4)


def test_a_long_prompt_keeps_its_most_recent_tokens(gpt_bundle):
    model, tokenizer, path = gpt_bundle
    prompt = "Once there was a keeper named Mara. " + "Every evening she climbed the stairs of the tower. " * 8
    ids = tokenizer(prompt).numpy().tolist()
    assert len(ids) > CONTEXT
    served = tf.saved_model.load(path).signatures["serving_default"](prompt=tf.constant([prompt]))
    # The reference generates from the prompt's last 48 - 12 tokens alone.
    expected = _reference_completions(model, tokenizer, [prompt], GPT_MAX_NEW_TOKENS)
    assert served["completion"].numpy()[0].decode() == expected[0]
    # Its first tokens would continue differently: the comparison tells the windows apart.
    head = tokenizer.detokenize(ids[: CONTEXT - GPT_MAX_NEW_TOKENS]).numpy()
    assert _reference_completions(model, tokenizer, [head], GPT_MAX_NEW_TOKENS) != expected


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


@pytest.fixture(scope="module")
def loaded_gpt(gpt_bundle):
    return tf.saved_model.load(gpt_bundle[2])


def test_generate_refuses_options_of_another_batch_size(gpt_bundle, loaded_gpt):
    assert audit(gpt_bundle[2]).ok  # The checks are core ops: no Xla* op, no PyFunc.
    function = loaded_gpt.signatures["generate"]
    options = {key: tf.constant(value) for key, value in _generate_options(3, 2).items()}
    # A request whose option tensors have another batch size than its prompts is an
    # InvalidArgument error (HTTP 400 from TF Serving), not options broadcast over the rows.
    for name in options:
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"`{name}` has 1 rows but `prompt` has 3"):
            function(prompt=tf.constant(PROMPTS), **{**options, name: options[name][:1]})
    with pytest.raises(tf.errors.InvalidArgumentError, match="`max_new_tokens` has 3 rows but `prompt` has 1"):
        function(prompt=tf.constant(PROMPTS[:1]), **options)
    # The REST column format sends such requests; the server answers them with that error.
    body = {"signature_name": "generate", "inputs": {"prompt": PROMPTS, **_generate_options(1, 2)}}
    with pytest.raises(tf.errors.InvalidArgumentError, match="has 1 rows but `prompt` has 3"):
        predict(loaded_gpt, body)


def test_non_finite_temperature_is_greedy_and_non_finite_top_p_is_off(loaded_gpt):
    function = loaded_gpt.signatures["generate"]

    def complete(**overrides):
        options = {**_generate_options(3, GPT_MAX_NEW_TOKENS, temperature=1.5, seed=7), **overrides}
        options = {key: tf.constant(value) for key, value in options.items()}
        return [text.decode() for text in function(prompt=tf.constant(PROMPTS), **options)["completion"].numpy()]

    greedy, sampled = complete(temperature=[0.0] * 3), complete()
    assert sampled != greedy  # the comparison below tells greedy rows from sampled ones
    # NaN and ±Infinity temperatures decode greedily, whatever else the batch holds.
    assert complete(temperature=[math.nan, math.inf, -math.inf]) == greedy
    assert complete(temperature=[math.nan, 1.5, math.inf]) == [greedy[0], sampled[1], greedy[2]]
    # A NaN or infinite top_p turns top-p off, as any top_p outside (0, 1] does.
    assert complete(top_p=[math.nan, math.inf, -math.inf]) == complete(top_p=[1.0] * 3) == sampled
