import pytest

from tfllm.data import hold_out_lines


def test_held_out_lines_are_copied_byte_for_byte(tmp_path):
    # Windows line ends, a lone carriage return and a byte that is not UTF-8 come through unchanged.
    rows = [b"first\r\n", b"sec\rond\n", b"th\xffird\n", b"fourth"]
    source = tmp_path / "corpus.txt"
    source.write_bytes(b"".join(rows))
    train, validation = hold_out_lines(str(source), str(tmp_path), 0.25)
    assert open(train, "rb").read() == b"".join(rows[:3]) and open(validation, "rb").read() == rows[3]


def test_header_lines_go_to_both_files(tmp_path):
    source = tmp_path / "data.tsv"
    source.write_bytes(b"\xef\xbb\xbfsentence\tlabel\r\n" + b"".join(b"text %d\t1\r\n" % i for i in range(4)))
    train, validation = hold_out_lines(str(source), str(tmp_path), 0.25, header_lines=1)
    assert open(train, "rb").read().startswith(b"\xef\xbb\xbfsentence\tlabel\r\ntext 0\t1\r\n")
    assert open(validation, "rb").read() == b"\xef\xbb\xbfsentence\tlabel\r\ntext 3\t1\r\n"


def test_given_lines_are_written_as_utf8(tmp_path):
    train, validation = hold_out_lines(str(tmp_path / "x.txt"), str(tmp_path), 0.5, lines=["é\n", "ü\r\n"])
    assert open(train, "rb").read() == "é\n".encode() and open(validation, "rb").read() == "ü\r\n".encode()


def test_too_little_to_split(tmp_path):
    source = tmp_path / "one.txt"
    source.write_text("one line\n")
    with pytest.raises(ValueError, match=r"one.txt \(1 lines\) is too short"):
        hold_out_lines(str(source), str(tmp_path), 0.1)
    source.write_text("\n \n")
    with pytest.raises(ValueError, match=r"one.txt is empty"):
        hold_out_lines(str(source), str(tmp_path), 0.1)
