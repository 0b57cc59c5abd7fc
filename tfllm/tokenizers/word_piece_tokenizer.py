"""WordPiece (BERT's tokenizer): keras-hub's in-graph tokenizer, trained and saved the tfllm way."""

import json
import os
import tempfile

import keras
import keras_hub
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

# keras-hub's own in-graph pre-tokenizer (normalize, lower-case, split): training runs the
# exact function the tokenizer runs, so the learned vocabulary fits what it will be asked.
from keras_hub.src.tokenizers.word_piece_tokenizer import (
    PUNCTUATION_AND_CJK_REGEX,
    PUNCTUATION_REGEX,
    WHITESPACE_AND_PUNCTUATION_REGEX,
    WHITESPACE_PUNCTUATION_AND_CJK_REGEX,
    pretokenize,
)

from tfllm.tokenizers._corpus import Corpus
from tfllm.tokenizers._tensors import ragged_ids, sanitize_utf8, string_tensor

VOCABULARY_FILE = "vocab.txt"
CONFIG_FILE = "tfllm_tokenizer.json"
# Hugging Face's per-directory settings; BERT directories say there whether they lower-case.
HUGGING_FACE_CONFIG_FILE = "tokenizer_config.json"
PAD, UNKNOWN, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
# In BERT's order of importance; a trained vocabulary starts with them, so [PAD] is id 0.
SPECIAL_TOKENS = (PAD, UNKNOWN, CLS, SEP, MASK)


@keras.saving.register_keras_serializable(package="tfllm")
class WordPieceTokenizer(keras_hub.tokenizers.WordPieceTokenizer):
    """BERT's WordPiece tokenizer, in the TensorFlow graph, with training and BERT-format files.

    A `keras_hub.tokenizers.WordPieceTokenizer` (TF Text's `FastWordpieceTokenizer` after
    keras-hub's normalization and splitting) that always runs its TensorFlow graph path: keras-hub
    runs eager calls through a separate pure-Python implementation and returns Python lists;
    here eager calls run the same compiled graph as `tf.data` and SavedModels do, and return
    tensors. Traced, it emits the TF Text ops `NormalizeUTF8` (with `strip_accents`),
    `CaseFoldUTF8` (with `lowercase`), `RegexSplitWithOffsets` and
    `FastWordpieceTokenizeWithOffsets`; `detokenize` emits `TFText>FastWordpieceDetokenize`. All
    are in the TF Text that TF Serving links in.

    The vocabulary always holds `[PAD] [UNK] [CLS] [SEP] [MASK]`, exposed as `pad_token_id`,
    `unknown_token_id`, `cls_token_id`, `sep_token_id`, `mask_token_id`. Text never produces
    them except `[UNK]`, which stands for words the vocabulary cannot spell: a literal "[MASK]"
    in the input is split into "[", "mask", "]" (keras-hub's `special_tokens_in_strings=False`),
    so user text cannot forge a mask or a segment boundary. The data pipeline inserts them by id.

    Args:
        vocabulary: list of tokens (id = position), or the path of a BERT `vocab.txt` (one token
            per line).
        lowercase: bool. Lower-case (Unicode case folding) before splitting.
        strip_accents: bool. Remove accents (NFD, then drop combining marks).
        **kwargs: other `keras_hub.tokenizers.WordPieceTokenizer` arguments (`split_on_cjk`,
            `sequence_length`, ...) and base layer arguments.

    Call arguments:
        inputs: a string or a `[batch]` string tensor (or list, or NumPy array).

    Returns:
        int32 token ids: a `tf.RaggedTensor` `[batch, None]` for a batch, a 1-D tensor for a
        single string. No special tokens are added.

    Example:

    >>> vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "qu", "##ick", "fox"]
    >>> tokenizer = WordPieceTokenizer(vocabulary)
    >>> tokenizer(["The quick fox"])
    <tf.RaggedTensor [[5, 6, 7, 8]]>
    >>> tokenizer.detokenize([[5, 6, 7, 8]]).numpy()
    array([b'the quick fox'], dtype=object)
    """

    def __init__(self, vocabulary=None, lowercase=True, strip_accents=True, **kwargs):
        self._add_special_token(PAD, "pad_token")
        self._add_special_token(UNKNOWN, "unknown_token")
        self._add_special_token(CLS, "cls_token")
        self._add_special_token(SEP, "sep_token")
        self._add_special_token(MASK, "mask_token")
        kwargs.setdefault("oov_token", UNKNOWN)
        super().__init__(vocabulary=vocabulary, lowercase=lowercase, strip_accents=strip_accents, **kwargs)

    def set_vocabulary(self, vocabulary):
        """Sets the vocabulary: a list of tokens, or the path of a `vocab.txt`."""
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = _read_vocabulary_file(vocabulary)
        if vocabulary is not None:
            vocabulary = list(vocabulary)
            _validate_vocabulary(vocabulary)
        super().set_vocabulary(vocabulary)
        # One compiled function per tokenizer, called eagerly and inlined when traced.
        self._tokenize_function = tf.function(
            lambda texts: self._tokenize_tf(_prepare(texts)),
            input_signature=[tf.TensorSpec([None], tf.string)],
            autograph=False,
        )
        self._split_words_function = tf.function(
            self._split_words, input_signature=[tf.TensorSpec([None], tf.string)], autograph=False
        )
        self._tokenize_words_function = tf.function(
            self._tokenize_words,
            input_signature=[tf.RaggedTensorSpec([None, None], tf.string, ragged_rank=1, row_splits_dtype=tf.int64)],
            autograph=False,
        )
        self._detokenize_function = tf.function(
            self._detokenize_tf,
            input_signature=[tf.RaggedTensorSpec([None, None], tf.int64, ragged_rank=1, row_splits_dtype=tf.int64)],
            autograph=False,
        )

    # ----------------------------------------------------------------- tokenize

    def call(self, inputs):
        return self.tokenize(inputs)

    def tokenize(self, inputs):
        """Same as calling the tokenizer."""
        self._check_vocabulary()
        inputs = string_tensor(inputs, "WordPieceTokenizer")
        if inputs.shape.rank == 0:
            return self._tokenize_function(inputs[tf.newaxis])[0]
        if inputs.shape.rank == 1 and not isinstance(inputs, tf.RaggedTensor):
            return self._tokenize_function(inputs)
        raise ValueError(f"WordPieceTokenizer takes a string or a 1-D string tensor. Received shape {inputs.shape}.")

    def split_words(self, inputs):
        """Splits text into the words the tokenizer sees, with their place in the text.

        Words are cut exactly where `tokenize` cuts them (at whitespace and control characters,
        around each punctuation character and, with `split_on_cjk`, each CJK character), but
        from the text as written: no lower-casing or accent stripping. Token classification and
        question answering label and answer with these words.

        Args:
            inputs: a `[batch]` string tensor (or list, or NumPy array).

        Returns:
            `(words, starts, ends)`: ragged `[batch, None]` tensors of strings and int32 offsets
            in Unicode characters (end exclusive). Invalid UTF-8 is read as U+FFFD, one
            character for each invalid sequence, and offsets count in that text.

        Example:

        >>> words, starts, ends = tokenizer.split_words(["Où est-il?"])
        >>> words.to_list(), starts.to_list(), ends.to_list()
        ([[b'O\xc3\xb9', b'est', b'-', b'il', b'?']], [[0, 3, 6, 7, 9]], [[2, 6, 7, 9, 10]])
        """
        inputs = string_tensor(inputs, "WordPieceTokenizer")
        if inputs.shape.rank != 1 or isinstance(inputs, tf.RaggedTensor):
            raise ValueError(f"`split_words` takes a 1-D string tensor. Received shape {inputs.shape}.")
        return self._split_words_function(inputs)

    def tokenize_words(self, words):
        """Token ids of each word: ragged `[batch, words, pieces]` from ragged `[batch, words]` strings.

        Each word is tokenized alone (so a word the tokenizer would split further, "U.S." or
        "e-mail", gets all its pieces); a word that yields no piece (one made only of accents
        that `strip_accents` removes) gets `[UNK]`, so every word keeps a first piece to label.
        """
        if not isinstance(words, tf.RaggedTensor):
            words = tf.ragged.constant(words, dtype=tf.string) if isinstance(words, list) else tf.convert_to_tensor(words)
        self._check_vocabulary()
        return self._tokenize_words_function(words)

    def _split_words(self, texts):
        texts = _prepare(texts)
        if self.split_on_cjk:
            delimiters, kept = WHITESPACE_PUNCTUATION_AND_CJK_REGEX, PUNCTUATION_AND_CJK_REGEX
        else:
            delimiters, kept = WHITESPACE_AND_PUNCTUATION_REGEX, PUNCTUATION_REGEX
        words, byte_starts, _ = tf_text.regex_split_with_offsets(texts, delimiters, kept)
        # Byte offsets to character offsets: the characters of the text before each word.
        before = tf.strings.substr(tf.gather(texts, words.value_rowids()), tf.zeros_like(byte_starts.flat_values), byte_starts.flat_values)
        starts = tf.strings.length(before, unit="UTF8_CHAR")
        ends = starts + tf.strings.length(words.flat_values, unit="UTF8_CHAR")
        return words, words.with_flat_values(starts), words.with_flat_values(ends)

    def _tokenize_words(self, words):
        pieces = self._tokenize_tf(_prepare(words.flat_values))
        empty = pieces.row_lengths() == 0
        unknown = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(tf.cast(empty, tf.int32))], tf.cast(self.unknown_token_id, pieces.dtype)),
            tf.cast(empty, tf.int64),
        )
        return words.with_flat_values(tf.concat([pieces, unknown], axis=1))

    def detokenize(self, ids):
        """Joins token ids back into text: words separated by spaces, "##" pieces glued on.

        Lower-casing, accent stripping and the exact spacing are not undone.

        Args:
            ids: int token ids: `[batch, None]` (ragged or dense tensor, NumPy array, nested
                lists) or a single sequence `[None]`. Floats are read only when they are whole
                numbers (`2.0`), and only eagerly: a traced function needs an integer dtype.

        Returns:
            A `[batch]` string tensor, or a scalar string for a single sequence.

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
                raise ValueError(f"Token ids must be in [0, {self.vocabulary_size() - 1}]. Received the id {bad[0]}.")
        strings = self._detokenize_function(ids)
        return strings[0] if unbatched else strings

    # ----------------------------------------------------------------- files

    def save(self, directory):
        """Writes `vocab.txt` (BERT's format: one token per line) and the normalization options."""
        self._check_vocabulary()
        os.makedirs(directory, exist_ok=True)
        _write_vocabulary_file(os.path.join(directory, VOCABULARY_FILE), self.vocabulary)
        with open(os.path.join(directory, CONFIG_FILE), "w", encoding="utf-8") as file:
            json.dump(
                {
                    "class_name": "WordPieceTokenizer",
                    "lowercase": self.lowercase,
                    "strip_accents": self.strip_accents,
                    "split_on_cjk": self.split_on_cjk,
                },
                file,
                indent=2,
            )

    @classmethod
    def load(cls, directory, lowercase=None, strip_accents=None):
        """Reads a tokenizer written by `save`, or a BERT / Hugging Face directory's `vocab.txt`.

        Args:
            directory: holds `vocab.txt`.
            lowercase: bool; `None` takes the saved setting, else Hugging Face's `do_lower_case`
                from `tokenizer_config.json`, else `True`.
            strip_accents: bool; `None` takes the saved setting, else Hugging Face's
                `strip_accents`, else the same as `lowercase` (as BERT does).

        CJK characters are split into words of their own unless the saved setting, or Hugging
        Face's `tokenize_chinese_chars`, says otherwise.
        """
        path = os.path.join(directory, VOCABULARY_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{VOCABULARY_FILE!r} not found in the tokenizer directory {os.fspath(directory)!r}")
        options = {}
        if os.path.isfile(os.path.join(directory, CONFIG_FILE)):
            with open(os.path.join(directory, CONFIG_FILE), encoding="utf-8") as file:
                options = json.load(file)
        elif os.path.isfile(os.path.join(directory, HUGGING_FACE_CONFIG_FILE)):
            with open(os.path.join(directory, HUGGING_FACE_CONFIG_FILE), encoding="utf-8") as file:
                hugging_face = json.load(file)
            options = {
                "lowercase": hugging_face.get("do_lower_case"),
                "strip_accents": hugging_face.get("strip_accents"),
                "split_on_cjk": hugging_face.get("tokenize_chinese_chars"),
            }
        if lowercase is None:
            lowercase = options.get("lowercase")
            lowercase = True if lowercase is None else lowercase
        if strip_accents is None:
            strip_accents = options.get("strip_accents")
            strip_accents = lowercase if strip_accents is None else strip_accents
        return cls(
            vocabulary=path,
            lowercase=bool(lowercase),
            strip_accents=bool(strip_accents),
            split_on_cjk=options.get("split_on_cjk") is not False,
        )

    def load_assets(self, dir_path):
        # keras-hub's reader strips every trailing space character, which would also eat a
        # token such as "\u00a0"; read lines exactly.
        self.set_vocabulary(os.path.join(dir_path, "vocabulary.txt"))

    def get_config(self):
        config = super().get_config()
        # keras-hub's config forgets this constructor argument.
        config["split_on_cjk"] = self.split_on_cjk
        return config

    # ----------------------------------------------------------------- training

    @classmethod
    def train(cls, texts_or_files, vocabulary_size, lowercase=True, strip_accents=True, min_frequency=2, show_progress=False):
        """Learns a WordPiece vocabulary with Hugging Face `tokenizers`' WordPiece trainer.

        The corpus is first split into words by keras-hub's in-graph pre-tokenizer (the one this
        tokenizer runs), then the trainer (Rust) learns from those words. Training is
        deterministic.

        Args:
            texts_or_files: a text file path, a list of paths (read line by line, streamed, as
                UTF-8 with each invalid byte sequence read as U+FFFD), or an iterable of strings. A list is taken as
                paths when every item looks like one (no spaces; a file extension or a "/").
            vocabulary_size: int, the vocabulary size to learn, the five special tokens
                included. A small corpus can give fewer tokens; the vocabulary always holds every
                character of the corpus, alone and as a "##" piece, even beyond this size.
            lowercase: bool, as in the constructor.
            strip_accents: bool, as in the constructor.
            min_frequency: int, the fewest occurrences a pair needs to be merged.
            show_progress: bool, whether the trainer draws a progress bar on stderr (the training
                scripts turn it on).

        Returns:
            A `WordPieceTokenizer`; its vocabulary starts `[PAD] [UNK] [CLS] [SEP] [MASK]`.

        Example:

        >>> tokenizer = WordPieceTokenizer.train(["The cat sat.", "The mat."] * 5, 60)
        >>> tokenizer.detokenize(tokenizer("the cat")).numpy()
        b'the cat'
        """
        smallest = len(SPECIAL_TOKENS) + 1
        if not isinstance(vocabulary_size, (int, np.integer)) or vocabulary_size < smallest:
            raise ValueError(
                f"`vocabulary_size` must be an int of at least {smallest}. Received: vocabulary_size={vocabulary_size!r}"
            )
        corpus = Corpus(texts_or_files)
        split = tf.function(
            lambda texts: tf.strings.reduce_join(
                pretokenize(_prepare(texts), lowercase, strip_accents, split=True, split_on_cjk=True),
                axis=-1,
                separator=" ",
            ),
            input_signature=[tf.TensorSpec([None], tf.string)],
        )
        with tempfile.TemporaryDirectory() as temporary:
            # The corpus's words, one line per text, go through a file: the trainer reads it in
            # Rust, and the character set is known before training starts (see below).
            words_path = os.path.join(temporary, "words.txt")
            characters = set()
            with open(words_path, "w", encoding="utf-8") as words_file:
                for batch in corpus:
                    for line in split(tf.constant(batch)).numpy():
                        line = line.decode("utf-8", errors="replace")
                        characters.update(line)
                        words_file.write(line + "\n")
            corpus.check_not_empty()
            characters.discard(" ")
            hf_tokenizer = Tokenizer(models.WordPiece(unk_token=UNKNOWN))
            # Words hold no ASCII space character (keras-hub splits on them), so cutting at them
            # gives back exactly the pre-tokenizer's words.
            hf_tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\t\n\x0B\f\r ]+"), behavior="removed")
            # The trainer numbers "##x" tokens in hash-map order, which breaks ties between equally
            # frequent pairs differently from run to run (huggingface/tokenizers#1794): listing
            # them up front, as extra special tokens, makes training deterministic.
            continuations = ["##" + character for character in sorted(characters)]
            trainer = trainers.WordPieceTrainer(
                vocab_size=int(vocabulary_size),
                min_frequency=min_frequency,
                special_tokens=[*SPECIAL_TOKENS, *continuations],
                continuing_subword_prefix="##",
                show_progress=bool(show_progress),
            )
            hf_tokenizer.train([words_path], trainer)
        vocabulary = hf_tokenizer.get_vocab()
        return cls(sorted(vocabulary, key=vocabulary.get), lowercase=lowercase, strip_accents=strip_accents)


def _prepare(texts):
    """What runs before keras-hub's pre-tokenizer, in training and tokenizing alike.

    Invalid UTF-8 becomes U+FFFD (so [UNK]) rather than reaching the normalizer. Space
    separators (Zs: no-break space U+00A0, U+3000, ...) become plain spaces: BERT splits words
    on them, but keras-hub's splitter only knows ASCII whitespace and would glue "a\u00a0b" into
    one word, an [UNK].
    """
    return tf.strings.regex_replace(sanitize_utf8(texts), r"\p{Zs}", " ")


def _validate_vocabulary(vocabulary):
    seen = set()
    for token in vocabulary:
        if not isinstance(token, str) or not token:
            raise ValueError(f"Vocabulary tokens must be non-empty strings. Received: {token!r}")
        if token in seen:
            raise ValueError(f"The vocabulary holds the token {token!r} twice.")
        seen.add(token)
    for token in SPECIAL_TOKENS:
        if token not in seen:
            raise ValueError(f"The vocabulary lacks the special token {token!r}; it must hold all of {list(SPECIAL_TOKENS)}.")


def _read_vocabulary_file(path):
    try:
        with open(path, encoding="utf-8", newline="") as file:
            lines = file.read().split("\n")
    except FileNotFoundError:
        raise FileNotFoundError(f"Vocabulary file not found: {os.fspath(path)!r}") from None
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _write_vocabulary_file(path, vocabulary):
    with open(path, "w", encoding="utf-8", newline="") as file:
        file.writelines(token + "\n" for token in vocabulary)
