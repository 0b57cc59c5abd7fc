"""`generate_text`: strings in, strings out, through keras-hub-style tokenizers."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from tests.generation.conftest import reference_greedy
from tfllm.generation import generate, generate_text
from tfllm.models import GPT

WORDS = ["[PAD]", "[UNK]", "the", "cat", "sat", "on", "a", "mat", "dog", "ran", "."]


def word_piece():
    return keras_hub.tokenizers.WordPieceTokenizer(vocabulary=WORDS)


def byte_pair():
    vocabulary = {"<|endoftext|>": 0, "a": 1, "b": 2, "c": 3, "Ġ": 4, "ab": 5, "Ġa": 6, "Ġb": 7, "Ġc": 8, "Ġab": 9}
    return keras_hub.tokenizers.BytePairTokenizer(vocabulary=vocabulary, merges=["a b", "Ġ a", "Ġ b", "Ġ c", "Ġa b"])


def small_gpt(tokenizer):
    keras.utils.set_random_seed(3)
    return GPT("gpt-test", vocabulary_size=tokenizer.vocabulary_size())


@pytest.mark.parametrize(
    "make_tokenizer, prompts, options",
    [
        (word_piece, ["the cat sat", "a dog"], dict(sampler="top_k", top_k=5, seed=1, num_return_sequences=2)),
        (byte_pair, ["ab c", "b"], dict()),
    ],
)
def test_generate_text_is_generate_between_tokenizer_calls(make_tokenizer, prompts, options):
    tokenizer = make_tokenizer()
    model = small_gpt(tokenizer)
    texts = generate_text(model, tokenizer, prompts, 5, jit_compile=False, **options)
    ids = tokenizer(tf.constant(prompts))
    ids = ids.to_list() if isinstance(ids, tf.RaggedTensor) else ids
    output = generate(model, ids, 5, jit_compile=False, **options)
    copies = options.get("num_return_sequences", 1)
    assert len(texts) == len(prompts) * copies
    for index, text in enumerate(texts):
        length = len(ids[index // copies])
        expected = tokenizer.detokenize(tf.constant([output[index, : length + 5]]))[0]
        expected = expected.numpy().decode() if hasattr(expected, "numpy") else expected
        assert text == expected
        assert text.startswith(prompts[index // copies])


def test_a_single_prompt_stop_tokens_and_include_prompt():
    tokenizer = word_piece()
    model = small_gpt(tokenizer)
    prompt = "the cat"
    full = generate_text(model, tokenizer, prompt, 6, jit_compile=False)
    assert isinstance(full, str) and full.startswith(prompt)
    continuation = full[len(prompt) :].split()
    # Stop at the first new word not seen before in the continuation: it and everything after
    # are dropped.
    first_new = next(i for i in range(1, len(continuation)) if continuation[i] not in continuation[:i])
    stop = WORDS.index(continuation[first_new])
    stopped = generate_text(model, tokenizer, prompt, 6, stop_token_ids=[stop], include_prompt=False, jit_compile=False)
    assert stopped == " ".join(continuation[:first_new])


def test_prompts_must_be_strings():
    tokenizer = word_piece()
    with pytest.raises(ValueError, match="prompts"):
        generate_text(small_gpt(tokenizer), tokenizer, [1, 2], 3)


def test_a_tokenizers_output_is_continued_greedily():
    tokenizer = byte_pair()
    model = small_gpt(tokenizer)
    ids = tokenizer(["ab", "c a"])  # rows of 1 and 2 ids, as the tokenizer gives them
    output = generate(model, ids, 4, jit_compile=False)
    prompts = ids.to_list() if isinstance(ids, tf.RaggedTensor) else ids
    assert [len(prompt) for prompt in prompts] == [1, 2]
    for index, prompt in enumerate(prompts):
        assert list(output[index, : len(prompt) + 4]) == reference_greedy(model, prompt, 4)
