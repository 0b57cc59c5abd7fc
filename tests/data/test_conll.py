"""read_conll: CoNLL-style tagged files in IOB1, IOB2 and BIOES (BILOU), read as IOB2."""

import re

import pytest

from tests.data_files import shared_data
from tfllm.data import TaggedSentences, read_conll


def write(tmp_path, text, name="tags.txt", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return str(path)


def sentences(*tagged):
    """File text of sentences given as "token/TAG token/TAG ..." strings, two columns."""
    return "\n\n".join("\n".join(" ".join(pair.rsplit("/", 1)) for pair in line.split()) for line in tagged) + "\n"


@pytest.mark.parametrize(
    "scheme, text, expected",
    [
        (
            "IOB2",
            sentences("EU/B-ORG rejects/O German/B-MISC call/O", "Peter/B-PER Blackburn/I-PER"),
            [["B-ORG", "O", "B-MISC", "O"], ["B-PER", "I-PER"]],
        ),
        (
            "IOB1",
            # I- begins entities; B- only between two adjacent entities of one type.
            sentences("EU/I-ORG rejects/O German/I-MISC call/O", "Peter/I-PER Smith/I-PER Paul/B-PER Jones/I-PER"),
            [["B-ORG", "O", "B-MISC", "O"], ["B-PER", "I-PER", "B-PER", "I-PER"]],
        ),
        (
            "IOB1",
            # An I- after an entity of another type begins an entity too.
            sentences("New/I-LOC York/I-LOC Times/I-ORG"),
            [["B-LOC", "I-LOC", "B-ORG"]],
        ),
        (
            "BIOES",
            sentences("EU/S-ORG rejects/O Peter/B-PER Paul/I-PER Blackburn/E-PER", "Bonn/S-LOC Paris/S-LOC"),
            [["B-ORG", "O", "B-PER", "I-PER", "I-PER"], ["B-LOC", "B-LOC"]],
        ),
        (
            "BIOES",
            # BILOU: L- and U- are E- and S-.
            sentences("EU/U-ORG rejects/O Peter/B-PER Blackburn/L-PER"),
            [["B-ORG", "O", "B-PER", "I-PER"]],
        ),
    ],
)
def test_each_scheme_is_detected_and_converted_to_iob2(tmp_path, scheme, text, expected):
    result = read_conll(write(tmp_path, text))
    assert isinstance(result, TaggedSentences)
    assert result.scheme == scheme
    assert result.tags == expected
    # The same file read with its scheme named gives the same tags.
    assert read_conll(write(tmp_path, text), scheme=scheme).tags == expected


def test_the_scheme_is_detected_from_the_whole_file(tmp_path):
    # The first sentence reads the same in IOB1 and IOB2; the last shows the file is IOB1.
    result = read_conll(write(tmp_path, sentences("A/B-PER B/I-PER", "C/O", "D/I-LOC E/I-LOC")))
    assert result.scheme == "IOB1"
    assert result.tags == [["B-PER", "I-PER"], ["O"], ["B-LOC", "I-LOC"]]


def test_words_line_numbers_types_and_vocabulary(tmp_path):
    path = write(
        tmp_path,
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\n\nPeter NNP B-NP B-PER.NAM\n"
        "Blackburn NNP I-NP I-PER.NAM\n",
    )
    result = read_conll(path)
    assert result.words == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert result.tags == [["B-ORG", "O"], ["B-PER.NAM", "I-PER.NAM"]]
    assert result.line_numbers == [3, 8]
    assert result.path == path
    assert len(result) == 2
    assert result.entity_types == ["ORG", "PER.NAM"]
    assert result.label_vocabulary() == ["O", "B-ORG", "I-ORG", "B-PER.NAM", "I-PER.NAM"]


@pytest.mark.parametrize(
    "line",
    [
        "Peter B-PER",
        "Peter\tB-PER",
        "Peter NNP B-PER",
        "Peter\tNNP\tB-NP\tB-PER",
        "  Peter  \t NNP   B-PER  ",
        "Peter a b c d e B-PER",
    ],
)
def test_any_number_of_columns_separated_by_tabs_or_spaces(tmp_path, line):
    result = read_conll(write(tmp_path, f"{line}\nsaid O\n"))
    assert result.words == [["Peter", "said"]]
    assert result.tags == [["B-PER", "O"]]


def test_docstart_blank_runs_crlf_bom_and_no_final_newline(tmp_path):
    text = "\ufeff-DOCSTART- O\r\n\r\nA S-LOC\r\n \t \r\n\r\n-DOCSTART- -X- O\r\nB O\r\nC S-LOC"
    result = read_conll(write(tmp_path, text))
    # A -DOCSTART- right after a sentence (no blank line between) ends it too.
    assert result.words == [["A"], ["B", "C"]]
    assert result.tags == [["B-LOC"], ["O", "B-LOC"]]
    assert result.line_numbers == [3, 7]
    assert result.scheme == "BIOES"


def test_non_ascii_tokens_and_types(tmp_path):
    text = "北 B-GPE.NAM\n京 I-GPE.NAM\n的 O\n\u3000 O\n"
    result = read_conll(write(tmp_path, text))
    assert result.words == [["北", "京", "的", "\u3000"]]
    assert result.tags == [["B-GPE.NAM", "I-GPE.NAM", "O", "O"]]


def test_other_encodings(tmp_path):
    path = write(tmp_path, "Müller B-PER\n", encoding="latin-1")
    assert read_conll(path, encoding="latin-1").words == [["Müller"]]


def error(tmp_path, text, **options):
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as info:
        read_conll(path, **options)
    return path, str(info.value)


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("A O\nB\n", 2, ["expected at least 2 columns, the token first and the tag last"]),
        ("A O\n\nB PER\n", 3, ["'PER'", "not O or PREFIX-TYPE"]),
        ("A O\nB B-\n", 2, ["'B-'"]),
        ("A O\nB b-PER\n", 2, ["'b-PER'"]),
        ("A X-PER\n", 1, ["'X-PER'"]),
        ("A NNP\n", 1, ["'NNP'"]),
    ],
)
def test_malformed_lines_are_errors_naming_file_and_line(tmp_path, text, line, words):
    path, message = error(tmp_path, text)
    assert message.startswith(f"{path}:{line}: ")
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("A O\nB I-PER\nC E-PER\n", 2, ["I-PER after O", "B-PER"]),
        ("A I-PER\nB E-PER\n", 1, ["I-PER first in its sentence"]),
        ("A O\nB E-PER\n", 2, ["E-PER after O"]),
        ("A B-PER\nB E-LOC\n", 2, ["E-LOC after B-PER", "E-PER"]),
        ("A B-PER\nB I-LOC\nC E-LOC\n", 2, ["I-LOC after B-PER", "line 1", "E-PER"]),
        ("A B-PER\nB O\n", 2, ["O after B-PER", "E-PER"]),
        ("A B-PER\nB I-PER\nC B-PER\nD E-PER\n", 3, ["B-PER after I-PER"]),
        ("A B-PER\nB S-PER\n", 2, ["S-PER after B-PER"]),
        ("A S-PER\nB E-PER\n", 2, ["E-PER after S-PER"]),
        ("A O\nB B-PER\nC I-PER\n\nD O\n", 3, ["ends inside the PER entity begun at line 2"]),
        ("A B-PER\nB L-LOC\n", 2, ["L-LOC after B-PER"]),
    ],
)
def test_impossible_bioes_transitions_are_errors_naming_file_and_line(tmp_path, text, line, words):
    path, message = error(tmp_path, text, scheme="BIOES")
    assert message.startswith(f"{path}:{line}: "), message
    for word in words:
        assert word in message, message
    if re.search(r"[ESLU]-", text):  # detected as BIOES: the same error
        assert error(tmp_path, text)[1] == message


@pytest.mark.parametrize(
    "text, line, after",
    [
        ("A O\nB I-PER\n", 2, "I-PER after O"),
        ("A I-PER\n", 1, "I-PER first in its sentence"),
        ("A B-LOC\nB I-PER\n", 2, "I-PER after B-LOC"),
        ("A B-PER\n\nB I-PER\n", 3, "I-PER first in its sentence"),
    ],
)
def test_an_entity_beginning_with_i_is_an_error_in_a_file_read_as_iob2(tmp_path, text, line, after):
    path, message = error(tmp_path, text, scheme="IOB2")
    assert message.startswith(f"{path}:{line}: {after}: in IOB2 an entity begins with B-PER"), message
    assert read_conll(path).scheme == "IOB1"


@pytest.mark.parametrize("scheme", ["IOB1", "IOB2"])
def test_bioes_tags_in_a_file_read_as_iob_are_errors(tmp_path, scheme):
    path, message = error(tmp_path, "A B-PER\nB I-PER\n\nC S-LOC\n", scheme=scheme)
    assert message.startswith(f"{path}:4: the tag 'S-LOC' is BIOES (or BILOU), in a file read as {scheme}")


def test_an_unknown_scheme_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="`scheme` must be 'auto' or one of"):
        read_conll(write(tmp_path, "A O\n"), scheme="IOBES")


def test_bytes_that_are_not_utf8_are_an_error_naming_the_line(tmp_path):
    path = write(tmp_path, b"A O\n\nM\xfcller B-PER\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}:3: the byte 0xfc is not utf-8")):
        read_conll(path)


def test_missing_empty_and_sentence_less_files(tmp_path):
    missing = str(tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError, match=re.escape(missing)):
        read_conll(missing)
    empty = write(tmp_path, "", name="empty.txt")
    with pytest.raises(ValueError, match=re.escape(empty)):
        read_conll(empty)
    blank = write(tmp_path, "-DOCSTART- -X- O\n\n \n\n", name="blank.txt")
    with pytest.raises(ValueError, match=re.escape(f"{blank} holds no sentences")):
        read_conll(blank)


@pytest.mark.slow  # the developers' CoNLL-2003 copy
def test_conll2003_dev():
    result = read_conll(shared_data("conll2003/dev.txt"))
    assert len(result) == 3250
    assert sum(len(words) for words in result.words) == 51362
    assert result.scheme == "IOB2"
    assert result.entity_types == ["LOC", "MISC", "ORG", "PER"]
    assert result.words[0][:3] == ["CRICKET", "-", "LEICESTERSHIRE"]
    assert result.tags[0][:3] == ["O", "O", "B-ORG"]
    assert all(len(words) == len(tags) for words, tags in zip(result.words, result.tags))


@pytest.mark.slow  # the developers' Weibo NER copy
def test_weibo_ner_dev():
    result = read_conll(shared_data("weibo_ner/dev.txt"))
    assert len(result) == 270
    assert result.entity_types == [
        f"{kind}.{form}" for kind in ("GPE", "LOC", "ORG", "PER") for form in ("NAM", "NOM")
    ]
    assert sum(len(words) for words in result.words) == 14509
    assert result.words[0][:3] == ["口", "腔", "溃"]
