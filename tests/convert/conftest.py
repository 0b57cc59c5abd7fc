"""Tiny random-weight Hugging Face GPT-2 and BERT directories, written by `transformers` itself."""

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A touching, funny film; it's the best of the year!",
    "Nothing works here: the plot drags and the jokes fall flat.",
    "Éclairs, naïve cafés and 42 rainy days...",
    "hello",
]

# A small BERT vocabulary: the special tokens, whole words, single characters and "##" pieces.
_BERT_WORDS = (
    "the quick brown fox jump over lazy dog a touch fun film it s best of year nothing work here "
    "plot drag and joke fall flat hello day rain cafe na eclair 42"
).split()
BERT_VOCABULARY = list(
    dict.fromkeys(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        + _BERT_WORDS
        + list("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'")
        + ["##" + piece for piece in ("s", "y", "ing", "ed", "es", "ive", "ny", *"abcdefghijklmnopqrstuvwxyz")]
    )
)


def _perturb(model, seed):
    """Random offsets on every parameter, so that each tensor (norms and biases too) matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def write_bert_vocabulary(directory):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "vocab.txt")
    with open(path, "w", encoding="utf-8") as file:
        file.writelines(token + "\n" for token in BERT_VOCABULARY)
    return path


def make_bert_directory(directory, model_class="BertModel", seed=0, **config):
    """Saves a random `transformers` BERT and its tokenizer; returns the PyTorch model."""
    directory = os.fspath(directory)
    vocabulary = write_bert_vocabulary(directory)
    transformers.BertTokenizer(vocabulary, do_lower_case=True).save_pretrained(directory)
    settings = dict(
        vocab_size=len(BERT_VOCABULARY),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=40,
        type_vocab_size=3,
    )
    settings.update(config)
    torch.manual_seed(seed)
    model = getattr(transformers, model_class)(transformers.BertConfig(**settings))
    _perturb(model, seed)
    model.save_pretrained(directory)
    return model


def make_gpt2_directory(directory, model_class="GPT2LMHeadModel", seed=0, **config):
    """Saves a random `transformers` GPT-2 and a small byte-level BPE tokenizer; returns the model."""
    directory = os.fspath(directory)
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(SENTENCES * 3, vocab_size=300, min_frequency=2, special_tokens=["<|endoftext|>"])
    os.makedirs(directory, exist_ok=True)
    bpe.save_model(directory)
    transformers.GPT2Tokenizer(
        os.path.join(directory, "vocab.json"), os.path.join(directory, "merges.txt")
    ).save_pretrained(directory)
    end_of_text = bpe.token_to_id("<|endoftext|>")
    settings = dict(
        vocab_size=bpe.get_vocab_size(),
        bos_token_id=end_of_text,
        eos_token_id=end_of_text,
        n_positions=40,
        n_embd=32,
        n_layer=2,
        n_head=4,
    )
    settings.update(config)
    torch.manual_seed(seed)
    model = getattr(transformers, model_class)(transformers.GPT2Config(**settings))
    _perturb(model, seed)
    model.save_pretrained(directory)
    return model


def padded_batch(vocabulary_size, lengths=(11, 7, 3), seed=0):
    """Random ids `(batch, max(lengths))`, right-padded with id 0, and the 0/1 padding mask."""
    rng = np.random.default_rng(seed)
    length = max(lengths)
    ids = rng.integers(1, vocabulary_size, size=(len(lengths), length)).astype("int32")
    mask = (np.arange(length)[None, :] < np.array(lengths)[:, None]).astype("int32")
    return ids * mask, mask


def max_difference(a, b, mask=None):
    """Largest absolute difference, over the unmasked (real-token) positions when a mask is given."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    difference = np.abs(a - b)
    if mask is not None:
        difference = difference[np.asarray(mask, bool)]
    return float(difference.max())
