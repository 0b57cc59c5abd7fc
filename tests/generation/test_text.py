"""`generate_text`: strings in, strings out, through keras-hub-style tokenizers."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

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
    # Stop at the second new word: it and everything after are dropped.
    stop = WORDS.index(continuation[1])
    if continuation[0] == continuation[1]:
        pytest.skip("this model repeats its first word")
    stopped = generate_text(model, tokenizer, prompt, 6, stop_token_ids=[stop], include_prompt=False, jit_compile=False)
    assert stopped == continuation[0]


def test_prompts_must_be_strings():
    tokenizer = word_piece()
    with pytest.raises(ValueError, match="prompts"):
        generate_text(small_gpt(tokenizer), tokenizer, [1, 2], 3)


def test_output_ids_are_in_the_tokenizer_vocabulary():
    tokenizer = byte_pair()
    output = generate(small_gpt(tokenizer), tokenizer(["ab", "c"]), 4, jit_compile=False)
    assert (np.asarray(output) < tokenizer.vocabulary_size()).all()
