"""Shared fixtures and reference implementations for the generation tests.

The references use nothing but the model's full forward pass (no cache) and numpy, one
prompt at a time, so they are independent of everything `tfllm.generation` does.
"""

import keras
import numpy as np
import pytest

from tfllm.models import GPT

# Prompts of different lengths, ids in the gpt-test vocabulary (512).
PROMPTS = [[11, 42, 7, 300, 5], [99], [3, 3, 200]]


@pytest.fixture(scope="module")
def gpt():
    """One tiny GPT per test module, so that compiled functions are shared between tests."""
    keras.utils.set_random_seed(7)
    return GPT("gpt-test")


# Reference forward passes run on a fixed-length buffer, so that Keras compiles `predict`
# once: the model is causal, so what follows the sequence does not change its logits.
BUFFER = 32


def next_token_logits(model, sequence):
    """float64 logits after `sequence` (a list of ids), by a full forward pass."""
    ids = np.zeros((1, BUFFER), "int32")
    ids[0, : len(sequence)] = sequence
    mask = (np.arange(BUFFER) < len(sequence)).astype("int32")[None, :]
    logits = model.predict_on_batch({"token_ids": ids, "padding_mask": mask})
    return np.asarray(keras.ops.convert_to_numpy(logits), "float64")[0, len(sequence) - 1]


def reference_greedy(model, prompt, max_new_tokens, repetition_penalty=1.0, no_repeat_ngram_size=0, stop=()):
    """Greedy decoding of one prompt by a full forward pass per step."""
    sequence = list(prompt)
    for _ in range(max_new_tokens):
        logits = next_token_logits(model, sequence)
        if repetition_penalty != 1.0:
            seen = sorted(set(sequence))
            logits[seen] = np.where(logits[seen] > 0, logits[seen] / repetition_penalty, logits[seen] * repetition_penalty)
        for token in banned_by_ngrams(sequence, no_repeat_ngram_size):
            logits[token] = -np.inf
        token = int(np.argmax(logits))
        sequence.append(token)
        if token in stop:
            break
    return sequence


def banned_by_ngrams(sequence, size):
    """The tokens that would repeat an n-gram of `size` already in `sequence`."""
    if not size or len(sequence) < size:
        return set()
    prefix = tuple(sequence[len(sequence) - size + 1 :])
    return {
        sequence[i + size - 1] for i in range(len(sequence) - size + 1) if tuple(sequence[i : i + size - 1]) == prefix
    }


def reference_beam_search(model, prompt, max_new_tokens, num_beams):
    """Textbook beam search (no stop tokens): the best `num_beams` sequences, best first."""
    beams = [(0.0, list(prompt))]
    for _ in range(max_new_tokens):
        candidates = []
        for score, sequence in beams:
            logits = next_token_logits(model, sequence)
            log_probs = logits - np.logaddexp.reduce(logits)
            for token in np.argsort(-log_probs)[:num_beams]:
                candidates.append((score + log_probs[token], sequence + [int(token)]))
        beams = sorted(candidates, key=lambda candidate: -candidate[0])[:num_beams]
    return beams


def row(output, index, prompt_length, max_new_tokens):
    """Row `index` of a `generate` output without its trailing padding columns."""
    return list(output[index, : prompt_length + max_new_tokens])
