"""Training corpora for the tokenizer trainers: in-memory texts or text files, streamed."""

import os
import re

import numpy as np

# A string that is one "word" ending in a file extension ("train.txt") or containing a path
# separator: in a list of such strings, they are file names, not text.
_PATH_LIKE = re.compile(r"^\S+$")
_EXTENSION = re.compile(r"\.\w{1,8}$")


def _looks_like_path(item):
    if isinstance(item, os.PathLike):
        return True
    if not isinstance(item, str) or not _PATH_LIKE.match(item):
        return False
    return bool(_EXTENSION.search(item)) or "/" in item or os.sep in item


def _as_text(item):
    if isinstance(item, bytes):
        # Invalid UTF-8 becomes U+FFFD, as the in-graph tokenizers do with it.
        return item.decode("utf-8", errors="replace")
    if isinstance(item, str):
        return item
    raise ValueError(f"A training corpus must hold strings or bytes. Received an item of type {type(item).__name__}: {item!r:.80}")


class Corpus:
    """An iterable over batches of training texts that counts what it has yielded.

    Args:
        texts_or_files: a path (`str` or `os.PathLike`) to a text file, a list of paths, or an
            iterable of strings (a list, a generator, a `tf.data.Dataset` of strings). A list whose
            items all look like file names ("train.txt", "data/x") is read as files, so a
            misspelt path is an error rather than one line of training text.
        batch_size: texts per batch handed to the trainer.

    Files are read line by line, never whole into memory, as written: lines keep their line
    ends ("\\n", "\\r\\n" or "\\r"), a byte-order mark stays as the character U+FEFF, and each
    sequence of bytes that is not UTF-8 becomes U+FFFD (Python's `errors="replace"`), as the
    in-graph tokenizers read such bytes. `bytes` items are decoded the same way.
    """

    def __init__(self, texts_or_files, batch_size=1000):
        self.batch_size = batch_size
        self.files = None
        self._texts = None
        self.num_characters = 0
        if isinstance(texts_or_files, (str, os.PathLike)):
            self.files = [texts_or_files]
        elif isinstance(texts_or_files, (list, tuple)) and texts_or_files and all(
            _looks_like_path(item) for item in texts_or_files
        ):
            self.files = list(texts_or_files)
        elif hasattr(texts_or_files, "as_numpy_iterator"):
            self._texts = _dataset_texts(texts_or_files)
        else:
            try:
                self._texts = iter(texts_or_files)
            except TypeError:
                raise ValueError(
                    "`texts_or_files` must be a file path, a list of file paths or an iterable of "
                    f"strings. Received: {texts_or_files!r:.80}"
                ) from None
        if self.files is not None:
            for path in self.files:
                if not os.path.isfile(path):
                    raise FileNotFoundError(f"Training file not found: {os.fspath(path)!r}")

    def describe(self):
        """How to name this corpus in an error message."""
        if self.files is not None:
            return "the training files " + ", ".join(repr(os.fspath(path)) for path in self.files)
        return "the training texts"

    def _items(self):
        if self.files is None:
            yield from self._texts
            return
        for path in self.files:
            with open(path, encoding="utf-8", errors="replace", newline="") as file:
                yield from file

    def __iter__(self):
        batch = []
        for item in self._items():
            text = _as_text(item)
            self.num_characters += len(text.strip())
            batch.append(text)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def check_not_empty(self):
        """Raises a ValueError naming the corpus if no non-space character has been read."""
        if self.num_characters == 0:
            raise ValueError(f"The training corpus is empty: {self.describe()} hold no text.")


def _dataset_texts(dataset):
    for element in dataset.as_numpy_iterator():
        for item in np.asarray(element, dtype=object).reshape(-1):
            yield item
