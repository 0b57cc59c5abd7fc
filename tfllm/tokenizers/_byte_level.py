"""In-graph pieces of GPT-2's byte-level BPE: the byte alphabet, the pre-tokenizer, the merge loop.

Everything here is core TensorFlow graph code (no TF Text op), so it runs the same eagerly, in
`tf.data` and inside an exported SavedModel served by TF Serving.
"""

import tensorflow as tf


def _bytes_to_unicode():
    """GPT-2's reversible map from the 256 byte values to printable characters.

    Printable Latin-1 bytes stand for themselves; the other 68 (controls, space, ...) are shifted
    to U+0100 and up, so every token of a vocabulary file is printable text.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    characters = {byte: chr(byte) for byte in printable}
    shifted = 0
    for byte in range(256):
        if byte not in characters:
            characters[byte] = chr(256 + shifted)
            shifted += 1
    return [characters[byte] for byte in range(256)]


# BYTE_SYMBOLS[b] is the vocabulary symbol of byte b ("Ġ" for the space byte 0x20).
BYTE_SYMBOLS = _bytes_to_unicode()
SYMBOL_TO_BYTE = {symbol: byte for byte, symbol in enumerate(BYTE_SYMBOLS)}


def symbols_to_bytes(token):
    """The raw bytes a vocabulary token stands for, or None if it is not byte-alphabet text."""
    if any(character not in SYMBOL_TO_BYTE for character in token):
        return None
    return bytes(SYMBOL_TO_BYTE[character] for character in token)


# GPT-2's pre-tokenization pattern (openai/gpt-2 encoder.py; Hugging Face's ByteLevel pre-tokenizer):
#   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
# RE2 (what TensorFlow runs) has no lookahead, so `\s+(?!\S)` is emulated. Its effect: a
# whitespace run followed by a non-space character gives up its last character, which then
# starts the next piece (" word", " !!") or, if it is not a plain space, stands alone ("\n").
# Putting MARKER before that last character makes a plain `\s+` stop in the same place; the
# marker is then removed. MARKER is U+FDD0, a Unicode noncharacter reserved for internal use: it
# is removed from input text first, so it is the one code point that does not round-trip.
MARKER = "\ufdd0"
_MARKER_RE = r"\x{FDD0}"
# `\s` of Python's `regex` module and of Oniguruma (Hugging Face) is Unicode's White_Space:
# \t \n \v \f \r, U+0085 and the separators (Zs, Zl, Zp). RE2's `\s` is ASCII only, so spell it out.
_SPACE = r"\t\n\x0B\f\r\x{85}\p{Z}"
# A space character followed by a non-space one: the marker goes before the pair.
_LAST_SPACE_PATTERN = rf"[{_SPACE}][^{_SPACE}]"
# One piece, optionally preceded by a marker (which only ever sits before a piece).
_PIECE_PATTERN = (
    rf"{_MARKER_RE}?(?:'s|'t|'re|'ve|'m|'ll|'d| ?\p{{L}}+| ?\p{{N}}+"
    rf"| ?[^{_SPACE}\p{{L}}\p{{N}}{_MARKER_RE}]+|[{_SPACE}]+)"
)
# Pieces are cut apart by writing this byte before each one and splitting on it. After
# `_tensors.sanitize_utf8` the text is valid UTF-8, in which the byte 0xFF never occurs.
_SEPARATOR = b"\xff"


def split_words(strings):
    """GPT-2 pre-tokenization of a `[batch]` string tensor into a `[batch, None]` ragged tensor.

    Input must be valid UTF-8 (see `_tensors.sanitize_utf8`); U+FDD0 is dropped from it. Core ops only:
    a global regex replace and a split on a fixed byte, cheaper than TF Text's `regex_split`,
    which matches each piece separately.
    """
    strings = tf.strings.regex_replace(strings, _MARKER_RE, "")
    strings = tf.strings.regex_replace(strings, _LAST_SPACE_PATTERN, MARKER + r"\0")
    strings = tf.strings.regex_replace(strings, _PIECE_PATTERN, _SEPARATOR + rb"\0")
    strings = tf.strings.regex_replace(strings, _MARKER_RE, "")
    # Every piece is preceded by the separator, so the first part of each string is empty.
    return tf.strings.split(strings, sep=_SEPARATOR)[:, 1:]


# Rank of a pair that no merge joins; larger than any real rank.
NO_MERGE = tf.int32.max


def byte_pair_merge(words, byte_ids, merge_ranks, merge_results, vocabulary_size):
    """Byte-pair encodes each word, returning `[words, None]` int32 token ids.

    GPT-2's algorithm, per word: while some adjacent pair of symbols has a merge rule, join every
    (non-overlapping, left to right) occurrence of the pair whose rule has the lowest rank. All
    words of the batch advance together, one merge rank per word per loop step. Symbols are
    vocabulary ids from the start, so the loop only compares and gathers integers, and nothing is
    remembered between calls: memory is the same however many new words a server sees.

    Args:
        words: `[words]` string tensor, each word non-empty.
        byte_ids: `[256]` int32, the id of each byte's symbol.
        merge_ranks: a static hash table from `left_id * vocabulary_size + right_id` (int64) to
            the merge's rank (int32), -1 when there is none.
        merge_results: `[merges]` int32, the id of the token each merge makes.
        vocabulary_size: int, the key multiplier above.
    """
    # All words' bytes in one flat int vector; `row_splits` delimits the words.
    byte_values = tf.io.decode_raw(tf.strings.reduce_join(words), tf.uint8)
    symbols = tf.gather(byte_ids, tf.reshape(tf.cast(byte_values, tf.int32), [-1]))
    lengths = tf.cast(tf.strings.length(words, unit="BYTE"), tf.int64)
    row_splits = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(lengths)], axis=0)
    num_words = tf.size(words)

    def merge_step(symbols, row_splits, _):
        word_of_symbol = tf.ragged.row_splits_to_segment_ids(row_splits, out_type=tf.int32)
        # Rank of the pair starting at each symbol; NO_MERGE at the last symbol of a word.
        keys = tf.cast(symbols[:-1], tf.int64) * vocabulary_size + tf.cast(symbols[1:], tf.int64)
        ranks = merge_ranks.lookup(keys)
        same_word = tf.equal(word_of_symbol[:-1], word_of_symbol[1:])
        ranks = tf.where(same_word & (ranks >= 0), ranks, NO_MERGE)
        ranks = tf.concat([ranks, [NO_MERGE]], axis=0)
        best = tf.math.unsorted_segment_min(ranks, word_of_symbol, num_words)
        matches = tf.equal(ranks, tf.gather(best, word_of_symbol)) & (ranks < NO_MERGE)
        # Occurrences overlap only in runs of one repeated symbol ("a a a" with the rule "a a");
        # like GPT-2, merge the 1st, 3rd, ... pair of each run.
        positions = tf.range(tf.size(ranks))
        misses = tf.logical_not(matches)
        last_miss = tf.gather(
            tf.concat([[-1], tf.cast(tf.where(misses)[:, 0], tf.int32)], axis=0),
            tf.cumsum(tf.cast(misses, tf.int32)),
        )
        merge_here = matches & (tf.math.floormod(positions - last_miss - 1, 2) == 0)
        # The left symbol of a merged pair becomes the merge's result; the right one is dropped.
        merged = tf.gather(merge_results, tf.where(merge_here, ranks, 0))
        symbols = tf.where(merge_here, merged, symbols)
        dropped = tf.concat([[False], merge_here[:-1]], axis=0)
        symbols = tf.boolean_mask(symbols, tf.logical_not(dropped))
        removed = tf.math.unsorted_segment_sum(tf.cast(merge_here, tf.int64), word_of_symbol, num_words)
        row_splits = row_splits - tf.concat([tf.zeros([1], tf.int64), tf.cumsum(removed)], axis=0)
        return symbols, row_splits, tf.reduce_any(merge_here)

    symbols, row_splits, _ = tf.while_loop(
        lambda symbols, row_splits, merged_any: merged_any,
        merge_step,
        (symbols, row_splits, tf.size(symbols) > 1),
        shape_invariants=(tf.TensorShape([None]), tf.TensorShape([None]), tf.TensorShape([])),
    )
    return tf.RaggedTensor.from_row_splits(symbols, row_splits, validate=False)
