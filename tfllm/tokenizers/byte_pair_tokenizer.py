"""Byte-level BPE (GPT-2's tokenizer), trained from a corpus and run inside the TensorFlow graph."""

import json
import os

import keras
import numpy as np
import tensorflow as tf
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from tfllm.tokenizers import _byte_level
from tfllm.tokenizers._corpus import Corpus
from tfllm.tokenizers._tensors import ragged_ids, sanitize_utf8, string_tensor

VOCABULARY_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
CONFIG_FILE = "tfllm_tokenizer.json"
END_OF_TEXT = "<|endoftext|>"


@keras.saving.register_keras_serializable(package="tfllm")
class BytePairTokenizer(keras.layers.Layer):
    """GPT-2's byte-level byte-pair-encoding tokenizer, as TensorFlow graph ops.

    Text is split with GPT-2's pre-tokenization regex, each piece's UTF-8 bytes become symbols of
    GPT-2's 256-symbol byte alphabet, and merge rules join adjacent symbols, lowest rank first.
    Every string round-trips exactly: `detokenize(tokenize(s)) == s` for valid UTF-8 `s` without
    U+FDD0 (a Unicode noncharacter reserved for internal use, which the pre-tokenizer uses as a
    marker and drops from input). Invalid UTF-8 input is not an error: each bad sequence is read
    as U+FFFD. `detokenize` always returns valid UTF-8, whatever the ids.

    The same graph code runs eagerly, in `tf.data.Dataset.map` and in an exported SavedModel; it
    uses core TensorFlow ops only (no TF Text op), keeps no cache (memory stays flat
    however many new words a server sees) and contains no `PyFunc`.

    Special tokens (such as `"<|endoftext|>"`) have ids in the vocabulary but are never produced
    from text: a literal `"<|endoftext|>"` in the input is encoded as ordinary characters, so
    user text cannot forge a document boundary. The data pipeline inserts them by id.

    Vocabulary and merges use GPT-2's / Hugging Face's files (`vocab.json`, `merges.txt`), so real
    GPT-2 directories load with `BytePairTokenizer.load`.

    Args:
        vocabulary: dict mapping each token (in the byte alphabet, e.g. `"Ġthe"`) to its id, ids
            `0 .. size - 1`; or the path of a `vocab.json`. It must hold all 256 byte symbols.
        merges: list of merge rules, each `"left right"` (or a `(left, right)` pair), in rank
            order; or the path of a `merges.txt`. Both parts and their concatenation must be in
            the vocabulary. `[]` gives a pure byte-level tokenizer.
        special_tokens: list of vocabulary tokens that text never produces. `None` takes every
            token that neither a byte nor a merge produces (GPT-2's `"<|endoftext|>"`).
        **kwargs: base layer arguments (`name`, ...).

    Call arguments:
        inputs: a string or a `[batch]` string tensor (or list, or NumPy array).

    Returns:
        int32 token ids: a `tf.RaggedTensor` `[batch, None]` for a batch, a 1-D tensor for a
        single string. No special tokens are added.

    Example:

    >>> tokenizer = BytePairTokenizer.train(["Hello world!", "Hello there."], 270)
    >>> ids = tokenizer(["Hello world!"])
    >>> tokenizer.detokenize(ids).numpy()
    array([b'Hello world!'], dtype=object)
    """

    def __init__(self, vocabulary=None, merges=None, special_tokens=None, **kwargs):
        super().__init__(**kwargs)
        # Inputs are strings and ids in TensorFlow whatever the Keras backend; leave them alone.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.built = True
        self._vocabulary = None
        self._requested_special_tokens = None if special_tokens is None else list(special_tokens)
        if vocabulary is not None or merges is not None:
            self.set_vocabulary(vocabulary, merges, special_tokens)

    # ----------------------------------------------------------------- vocabulary

    def set_vocabulary(self, vocabulary, merges, special_tokens=None):
        """Sets the vocabulary, merges and special tokens (see the class arguments)."""
        if vocabulary is None or merges is None:
            raise ValueError(
                "BytePairTokenizer needs both `vocabulary` and `merges`. Received: "
                f"vocabulary={'None' if vocabulary is None else '...'}, merges={'None' if merges is None else '...'}"
            )
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = _read_vocabulary_file(vocabulary)
        if isinstance(merges, (str, os.PathLike)):
            merges = _read_merges_file(merges)
        self._vocabulary = _Vocabulary(vocabulary, merges, special_tokens)
        vocab = self._vocabulary
        # An immutable table: nothing grows while the tokenizer runs. Tables and gathers cannot
        # be empty, so with `merges=[]` one entry under a key no pair has (-1) stands in.
        keys = vocab.merge_keys or [-1]
        self._merge_ranks = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.int64), tf.range(len(keys), dtype=tf.int32)),
            default_value=-1,
        )
        self._merge_results = tf.constant(vocab.merge_results or [0], tf.int32)
        self._byte_ids = tf.constant(vocab.byte_ids, tf.int32)
        self._id_bytes = tf.constant(vocab.id_bytes, tf.string)
        self._tokenize_batch = tf.function(
            self._tokenize_batch_graph, input_signature=[tf.TensorSpec([None], tf.string)], autograph=False
        )
        self._detokenize_batch = tf.function(
            self._detokenize_batch_graph,
            input_signature=[tf.RaggedTensorSpec([None, None], tf.int64, ragged_rank=1, row_splits_dtype=tf.int64)],
            autograph=False,
        )

    def _check_vocabulary(self):
        if self._vocabulary is None:
            raise ValueError(
                "This BytePairTokenizer has no vocabulary. Pass `vocabulary` and `merges`, or use "
                "`BytePairTokenizer.load(directory)` or `BytePairTokenizer.train(...)`."
            )

    def vocabulary_size(self):
        """The number of tokens, special tokens included."""
        self._check_vocabulary()
        return len(self._vocabulary.tokens)

    def get_vocabulary(self):
        """All tokens as a list, indexed by id."""
        self._check_vocabulary()
        return list(self._vocabulary.tokens)

    def get_merges(self):
        """The merge rules as `"left right"` strings, in rank order."""
        self._check_vocabulary()
        return list(self._vocabulary.merges)

    def id_to_token(self, id):
        """The token string of an id."""
        self._check_vocabulary()
        tokens = self._vocabulary.tokens
        if not isinstance(id, (int, np.integer)) or not 0 <= id < len(tokens):
            raise ValueError(f"`id` must be an int in [0, {len(tokens) - 1}]. Received: id={id!r}")
        return tokens[id]

    def token_to_id(self, token):
        """The id of a token string (byte-alphabet form, e.g. `"Ġthe"`, or a special token)."""
        self._check_vocabulary()
        if token not in self._vocabulary.ids:
            raise ValueError(f"Token {token!r} is not in the vocabulary.")
        return self._vocabulary.ids[token]

    @property
    def special_tokens(self):
        """The special tokens, in id order."""
        self._check_vocabulary()
        return list(self._vocabulary.special_tokens)

    @property
    def special_token_ids(self):
        """The ids of the special tokens."""
        return [self.token_to_id(token) for token in self.special_tokens]

    @property
    def end_of_text_id(self):
        """The id of `"<|endoftext|>"`, or `None` when the vocabulary has no such token."""
        self._check_vocabulary()
        return self._vocabulary.ids.get(END_OF_TEXT)

    # ----------------------------------------------------------------- tokenize

    def call(self, inputs):
        self._check_vocabulary()
        inputs = string_tensor(inputs, "BytePairTokenizer")
        if inputs.shape.rank == 0:
            return self._tokenize_batch(inputs[tf.newaxis])[0]
        if inputs.shape.rank == 1 and not isinstance(inputs, tf.RaggedTensor):
            return self._tokenize_batch(inputs)
        raise ValueError(
            f"BytePairTokenizer takes a string or a 1-D string tensor. Received shape {inputs.shape}."
        )

    def tokenize(self, inputs):
        """Same as calling the tokenizer."""
        return self(inputs)

    def compute_output_spec(self, inputs):
        # Needed where a Functional model is rebuilt from its config, before the vocabulary
        # assets are loaded.
        return keras.KerasTensor((*inputs.shape, None), dtype="int32")

    def _tokenize_batch_graph(self, strings):
        words = _byte_level.split_words(sanitize_utf8(strings))
        # Natural text repeats words a lot: encode each distinct word of the batch once.
        unique_words, word_index = tf.unique(words.flat_values, out_idx=tf.int64)
        pieces = _byte_level.byte_pair_merge(
            unique_words,
            self._byte_ids,
            self._merge_ranks,
            self._merge_results,
            self.vocabulary_size(),
        )
        # (batch, words, pieces) -> (batch, tokens)
        pieces = tf.gather(pieces, word_index)
        return tf.RaggedTensor.from_row_splits(pieces, words.row_splits, validate=False).merge_dims(1, 2)

    # ----------------------------------------------------------------- detokenize

    def detokenize(self, ids):
        """Turns token ids back into strings.

        Args:
            ids: int token ids: `[batch, None]` (ragged or dense tensor, NumPy array, nested
                lists) or a single sequence `[None]`. Floats are read only when they are whole
                numbers (`2.0`), and only eagerly: a traced function needs an integer dtype.

        Returns:
            A `[batch]` string tensor, or a scalar string for a single sequence; always valid
            UTF-8 (bytes that do not form valid UTF-8, e.g. an incomplete multi-byte character,
            become U+FFFD). Special tokens come back as their text.

        Raises:
            ValueError for an id outside the vocabulary, a float that is not a whole number, or
            anything else that is not an integer.
        """
        self._check_vocabulary()
        ids, unbatched = ragged_ids(ids)
        if tf.executing_eagerly():
            flat = ids.flat_values.numpy()
            bad = flat[(flat < 0) | (flat >= self.vocabulary_size())]
            if bad.size:
                raise ValueError(
                    f"Token ids must be in [0, {self.vocabulary_size() - 1}]. Received the id {bad[0]}."
                )
        strings = self._detokenize_batch(ids)
        return strings[0] if unbatched else strings

    def _detokenize_batch_graph(self, ids):
        size = self.vocabulary_size()
        with tf.control_dependencies(
            [
                tf.debugging.assert_non_negative(ids.flat_values, message="Token ids must be non-negative."),
                tf.debugging.assert_less(ids.flat_values, tf.constant(size, tf.int64), message=f"Token ids must be below {size}."),
            ]
        ):
            token_bytes = tf.gather(self._id_bytes, ids)
        # Ids can be any sequence (a model's samples, a truncated window): repair the bytes.
        return sanitize_utf8(tf.strings.reduce_join(token_bytes, axis=-1))

    # ----------------------------------------------------------------- files

    def save(self, directory):
        """Writes `vocab.json` and `merges.txt` (GPT-2's format) and the special tokens."""
        self._check_vocabulary()
        os.makedirs(directory, exist_ok=True)
        self.save_assets(directory)
        with open(os.path.join(directory, CONFIG_FILE), "w", encoding="utf-8") as file:
            json.dump({"class_name": "BytePairTokenizer", "special_tokens": self.special_tokens}, file, indent=2)

    @classmethod
    def load(cls, directory, special_tokens=None):
        """Reads a tokenizer written by `save`, or a GPT-2 / Hugging Face directory.

        Args:
            directory: holds `vocab.json` and `merges.txt`.
            special_tokens: overrides the saved list. Without one and without a saved list (a
                GPT-2 directory), every token no byte or merge produces is special.
        """
        for name in (VOCABULARY_FILE, MERGES_FILE):
            if not os.path.isfile(os.path.join(directory, name)):
                raise FileNotFoundError(f"{name!r} not found in the tokenizer directory {os.fspath(directory)!r}")
        config_path = os.path.join(directory, CONFIG_FILE)
        if special_tokens is None and os.path.isfile(config_path):
            with open(config_path, encoding="utf-8") as file:
                special_tokens = json.load(file).get("special_tokens")
        return cls(
            vocabulary=os.path.join(directory, VOCABULARY_FILE),
            merges=os.path.join(directory, MERGES_FILE),
            special_tokens=special_tokens,
        )

    def save_assets(self, dir_path):
        vocab = self._vocabulary
        with open(os.path.join(dir_path, VOCABULARY_FILE), "w", encoding="utf-8") as file:
            json.dump({token: id for id, token in enumerate(vocab.tokens)}, file, ensure_ascii=False)
        with open(os.path.join(dir_path, MERGES_FILE), "w", encoding="utf-8") as file:
            file.write("#version: 0.2\n")
            file.writelines(merge + "\n" for merge in vocab.merges)

    def load_assets(self, dir_path):
        self.set_vocabulary(
            os.path.join(dir_path, VOCABULARY_FILE),
            os.path.join(dir_path, MERGES_FILE),
            self._requested_special_tokens,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                # The vocabulary and merges travel as assets (`save_assets`), not in the config.
                "vocabulary": None,
                "merges": None,
                "special_tokens": self.special_tokens if self._vocabulary else self._requested_special_tokens,
            }
        )
        return config

    # ----------------------------------------------------------------- training

    @classmethod
    def train(cls, texts_or_files, vocabulary_size, special_tokens=(END_OF_TEXT,), min_frequency=2, show_progress=False):
        """Learns a vocabulary and merges from a corpus with Hugging Face `tokenizers`' BPE trainer.

        The trainer pre-tokenizes with GPT-2's regex (`ByteLevel(add_prefix_space=False)`) and
        starts from all 256 byte symbols, exactly as this tokenizer splits text, so every merge it
        learns is one the tokenizer can apply.

        Args:
            texts_or_files: a text file path, a list of paths (read line by line, streamed, as
                UTF-8 with each invalid byte sequence read as U+FFFD), or an iterable of strings. A list is taken as
                paths when every item looks like one (no spaces; a file extension or a "/").
            vocabulary_size: int, the largest vocabulary to learn, special tokens and the 256 byte
                symbols included. A small corpus can give fewer tokens.
            special_tokens: tokens given the first ids (`"<|endoftext|>"` is id 0 by default).
            min_frequency: int, the fewest occurrences a pair needs to be merged.
            show_progress: bool, whether the trainer draws a progress bar on stderr (the training
                scripts turn it on).

        Returns:
            A `BytePairTokenizer`.

        Example:

        >>> tokenizer = BytePairTokenizer.train(["the cat sat on the mat"] * 10, 280)
        >>> tokenizer.detokenize(tokenizer("the mat")).numpy()
        b'the mat'
        """
        special_tokens = list(special_tokens)
        smallest = 256 + len(special_tokens)
        if not isinstance(vocabulary_size, (int, np.integer)) or vocabulary_size < smallest:
            raise ValueError(
                f"`vocabulary_size` must be an int of at least {smallest} (256 bytes + "
                f"{len(special_tokens)} special tokens). Received: vocabulary_size={vocabulary_size!r}"
            )
        corpus = Corpus(texts_or_files)
        hf_tokenizer = Tokenizer(models.BPE())
        hf_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        trainer = trainers.BpeTrainer(
            vocab_size=int(vocabulary_size),
            min_frequency=min_frequency,
            special_tokens=special_tokens,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=bool(show_progress),
        )
        hf_tokenizer.train_from_iterator(corpus, trainer)
        corpus.check_not_empty()
        model = json.loads(hf_tokenizer.to_str())["model"]
        return cls(vocabulary=model["vocab"], merges=model["merges"], special_tokens=special_tokens)


class _Vocabulary:
    """Validated vocabulary, merges and the arrays the graph needs (plain Python, not tracked)."""

    def __init__(self, vocabulary, merges, special_tokens):
        if not isinstance(vocabulary, dict):
            raise ValueError(f"`vocabulary` must be a dict from token to id. Received: {type(vocabulary).__name__}")
        self.ids = dict(vocabulary)
        self.tokens = [None] * len(self.ids)
        for token, id in self.ids.items():
            if not isinstance(token, str):
                raise ValueError(f"Vocabulary tokens must be strings. Received the token {token!r}")
            if not isinstance(id, (int, np.integer)) or not 0 <= id < len(self.tokens) or self.tokens[id] is not None:
                raise ValueError(
                    f"Vocabulary ids must be 0 .. {len(self.tokens) - 1}, each used once. "
                    f"Received the id {id!r} for the token {token!r}"
                )
            self.tokens[id] = token
        self.ids = {token: int(id) for token, id in self.ids.items()}

        for byte, symbol in enumerate(_byte_level.BYTE_SYMBOLS):
            if symbol not in self.ids:
                raise ValueError(
                    f"The vocabulary lacks the byte symbol {symbol!r} (byte {byte:#04x}); a byte-level "
                    "vocabulary must hold all 256 byte symbols."
                )
        self.byte_ids = [self.ids[symbol] for symbol in _byte_level.BYTE_SYMBOLS]

        self.merges, self.merge_keys, self.merge_results = [], [], []
        seen = set()
        for merge in merges:
            left, right = _merge_parts(merge)
            for part in (left, right, left + right):
                if part not in self.ids:
                    raise ValueError(f"The merge {left + ' ' + right!r} uses {part!r}, which is not in the vocabulary.")
            key = self.ids[left] * len(self.tokens) + self.ids[right]
            if key in seen:
                raise ValueError(f"The merge {left + ' ' + right!r} appears twice.")
            seen.add(key)
            self.merges.append(f"{left} {right}")
            self.merge_keys.append(key)
            self.merge_results.append(self.ids[left + right])

        producible = set(_byte_level.BYTE_SYMBOLS) | {self.tokens[id] for id in self.merge_results}
        if special_tokens is None:
            special_tokens = [token for token in self.tokens if token not in producible]
        for token in special_tokens:
            if token not in self.ids:
                raise ValueError(f"The special token {token!r} is not in the vocabulary.")
            if token in producible:
                raise ValueError(f"The special token {token!r} is a byte symbol or a merge result; text would produce it.")
        self.special_tokens = sorted(special_tokens, key=self.ids.get)

        # What each id detokenizes to: special tokens as their text, the rest through the byte
        # alphabet (tokens outside it, which only unusual vocabularies hold, as their text).
        special = set(self.special_tokens)
        self.id_bytes = []
        for token in self.tokens:
            raw = None if token in special else _byte_level.symbols_to_bytes(token)
            self.id_bytes.append(token.encode("utf-8") if raw is None else raw)


def _merge_parts(merge):
    if isinstance(merge, str):
        parts = merge.split(" ")
    elif isinstance(merge, (list, tuple)):
        parts = list(merge)
    else:
        parts = None
    if parts is None or len(parts) != 2 or not all(isinstance(part, str) and part for part in parts):
        raise ValueError(f'Each merge must be "left right" (two non-empty tokens). Received: {merge!r}')
    return parts


def _read_vocabulary_file(path):
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except FileNotFoundError:
        raise FileNotFoundError(f"Vocabulary file not found: {os.fspath(path)!r}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"The vocabulary file {os.fspath(path)!r} is not valid JSON: {error}") from None


def _read_merges_file(path):
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().split("\n")
    except FileNotFoundError:
        raise FileNotFoundError(f"Merges file not found: {os.fspath(path)!r}") from None
    if lines and lines[0].startswith("#version"):
        lines = lines[1:]
    return [line for line in lines if line]
