"""Text that stresses pre-tokenization, byte handling and round trips."""

import random
import unicodedata

# Strings that stress pre-tokenization, byte handling and round trips.
TRICKY_STRINGS = [
    "",
    " ",
    "   ",
    "a",
    "Hello, world!",
    "  leading and trailing  ",
    "runs   of    spaces before words",
    "spaces   123 before  digits   4.5",
    "punctuation   !!! ?? ... ---",
    "it's   'tis  don't  we'll they're I'd you've I'm",
    "  's  't ''s 's's",
    "IT'S SHOUTING'S",
    "tabs\there\t\tand\t\t\tthere",
    "new\nlines\n\nand\n\n\n",
    "windows\r\nline\r\nends\r\n",
    "mixed \t\n whitespace \n\t here",
    "non\u00a0breaking\u00a0\u00a0spaces",
    "ideographic\u3000space\u3000\u3000x",
    "\u2028line\u2029paragraph\x85next\x0bvt\x0cff",
    "trailing whitespace \t\n",
    "emoji 😀😃 👍🏽 👩‍👩‍👧‍👦 🏳️‍🌈 🇫🇷",
    "CJK 日本語のテキスト 中文文本 한국어",
    "combining e\u0301 a\u0300 n\u0303 Z\u0351\u036b\u0343\u036a",
    "numbers ١٢٣ ½ ² Ⅻ 10,000.5",
    "math ∑∫√ and symbols ©®™ $€¥",
    "zero\u200bwidth\u200c\u200djoiners\ufeffbom",
    "control \x00\x01\x1f\x7f chars",
    "<|endoftext|> is not special in text",
    "x" * 3000,
    "abc" * 1000,
    "   \n   \n",
]


def random_strings(count, seed):
    """Random strings of tricky pieces and random assigned code points."""
    rng = random.Random(seed)
    pieces = [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\x0b", "\x85", "\u2028", "'", "'s", "'t",
              "'re", "'ll", "'S", "a", "Z", "é", "e\u0301", "日本", "1", "42", "٣", "½", "!", "?!", "-", "😀",
              "👨‍👩‍👧", "👍🏽", "\u200b", "\ufeff", "_", "s", "ve", "d"]  # fmt: skip

    def code_point():
        while True:
            character = chr(rng.randint(0, 0x10FFFF))
            # Surrogates cannot be UTF-8; unassigned code points differ between Unicode versions
            # (Python's regex, RE2 and Oniguruma each ship their own tables).
            if unicodedata.category(character) not in ("Cs", "Cn"):
                return character

    return [
        "".join(rng.choice(pieces) if rng.random() < 0.6 else code_point() for _ in range(rng.randint(0, 12)))
        for _ in range(count)
    ]
