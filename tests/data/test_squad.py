"""read_squad: SQuAD v1.1 JSON, every answer checked against its context."""

import json
import re

import pytest

from tests.data_files import shared_data
from tfllm.data import QAExample, read_squad

CONTEXT = "Denver Broncos defeated the Carolina Panthers 24-10."


def squad(*qas, context=CONTEXT, title="Super_Bowl_50"):
    return {"version": "1.1", "data": [{"title": title, "paragraphs": [{"context": context, "qas": list(qas)}]}]}


def qa(question_id, *answers, question="Who won?"):
    return {"id": question_id, "question": question, "answers": [{"text": t, "answer_start": s} for t, s in answers]}


def write(tmp_path, content, name="squad.json"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return str(path)


def test_reads_every_question_in_file_order(tmp_path):
    data = squad(qa("q1", ("Denver Broncos", 0), ("Denver Broncos", 0), ("Broncos", 7)), qa("q2", ("24-10", 46)))
    data["data"].append({"title": "Other", "paragraphs": [{"context": "ab", "qas": [qa("q3", ("b", 1))]}]})
    examples = read_squad(write(tmp_path, data))
    assert examples == [
        QAExample(
            "q1", "Who won?", CONTEXT, ["Denver Broncos", "Denver Broncos", "Broncos"], [0, 0, 7], "Super_Bowl_50"
        ),
        QAExample("q2", "Who won?", CONTEXT, ["24-10"], [46], "Super_Bowl_50"),
        QAExample("q3", "Who won?", "ab", ["b"], [1], "Other"),
    ]


def test_questions_without_answers_and_articles_without_titles(tmp_path):
    data = squad(qa("q1"))
    del data["data"][0]["title"]
    (example,) = read_squad(write(tmp_path, data))
    assert (example.answers, example.answer_starts, example.title) == ([], [], "")


MISMATCHED = squad(
    qa("q1", ("Denver Broncos", 0), ("Denver  Broncos", 0)),  # the second: one space too many
    qa("q2", ("Broncos", 6)),  # one character early: the question keeps no answer
    qa("q3", ("Carolina", 28)),
    qa("q4", ("carolina Panthers", 28), ("Panthers", 37), ("24-10", 47)),
    qa("q5", ("Panthers", 0)),
)


def test_mismatched_answers_are_dropped_with_one_warning(tmp_path):
    path = write(tmp_path, MISMATCHED)
    with pytest.warns(UserWarning) as record:
        examples = read_squad(path)
    assert len(record) == 1
    message = str(record[0].message)
    assert message == (
        f"{path}: dropped 5 answers in 4 questions that do not match the context at their answer_start "
        "(first question ids: q1, q2, q4)."
    )
    assert [example.id for example in examples] == ["q1", "q2", "q3", "q4", "q5"]
    assert [example.answers for example in examples] == [["Denver Broncos"], [], ["Carolina"], ["Panthers"], []]
    assert [example.answer_starts for example in examples] == [[0], [], [28], [37], []]


def test_mismatched_answers_are_an_error_when_asked(tmp_path):
    path = write(tmp_path, MISMATCHED)
    with pytest.raises(ValueError) as info:
        read_squad(path, on_mismatch="error")
    assert str(info.value) == (
        f"{path}: 5 answers in 4 questions do not match the context at their answer_start (first: "
        "q1: expected 'Denver  Broncos' at 0, found 'Denver Broncos '; q2: expected 'Broncos' at 6, found ' Bronco'; "
        "q4: expected 'carolina Panthers' at 28, found 'Carolina Panthers'); pass on_mismatch='skip' to drop them."
    )


def test_one_mismatch_is_worded_in_the_singular(tmp_path):
    path = write(tmp_path, squad(qa("q1", ("Broncos", 0))))
    with pytest.warns(UserWarning, match=re.escape("dropped 1 answer in 1 question that do not match")):
        read_squad(path)


def test_no_warning_when_every_answer_matches(tmp_path, recwarn):
    read_squad(write(tmp_path, squad(qa("q1", ("Broncos", 7)))), on_mismatch="skip")
    assert not [warning for warning in recwarn if issubclass(warning.category, UserWarning)]


def bad(tmp_path, content):
    path = write(tmp_path, content)
    with pytest.raises(ValueError) as info:
        read_squad(path)
    return path, str(info.value)


def without(key, where):
    """A valid file with `key` deleted from the root, the article, the paragraph, the second
    question or its answer."""
    data = squad(qa("q1", ("Broncos", 7)), qa("q2", ("Broncos", 7)))
    article = data["data"][0]
    paragraph = article["paragraphs"][0]
    question = paragraph["qas"][1]
    node = {"root": data, "article": article, "paragraph": paragraph, "question": question}.get(where)
    del (node if node is not None else question["answers"][0])[key]
    return data


@pytest.mark.parametrize(
    "key, where, message",
    [
        ("data", "root", 'the top level: no "data".'),
        ("paragraphs", "article", 'data[0]: no "paragraphs".'),
        ("context", "paragraph", 'data[0].paragraphs[0]: no "context".'),
        ("qas", "paragraph", 'data[0].paragraphs[0]: no "qas".'),
        ("question", "question", 'data[0].paragraphs[0].qas[1]: no "question".'),
        ("id", "question", 'data[0].paragraphs[0].qas[1]: no "id".'),
        ("answers", "question", 'data[0].paragraphs[0].qas[1]: no "answers".'),
        ("text", "answer", 'data[0].paragraphs[0].qas[1].answers[0]: no "text".'),
        ("answer_start", "answer", 'data[0].paragraphs[0].qas[1].answers[0]: no "answer_start".'),
    ],
)
def test_a_missing_key_is_an_error_naming_file_and_place(tmp_path, key, where, message):
    path, error = bad(tmp_path, without(key, where))
    assert error == f"{path}: {message}"


@pytest.mark.parametrize(
    "content, message",
    [
        ([1, 2], "the top level: expected an object, found a list."),
        ({"data": {}}, "data: expected a list, found an object."),
        (
            squad(qa("q1", ("Broncos", "7"))),
            "data[0].paragraphs[0].qas[0].answers[0].answer_start: expected an integer, found a string.",
        ),
        (squad(qa("q1", ("Broncos", True))), "answer_start: expected an integer, found a boolean."),
        (squad(qa("q1"), context=None), "data[0].paragraphs[0].context: expected a string, found null."),
        (
            squad(qa("q1"), qa("q1")),
            "data[0].paragraphs[0].qas[1]: the id 'q1' is also the id of data[0].paragraphs[0].qas[0].",
        ),
        ({"data": []}, "holds no questions."),
    ],
)
def test_malformed_content_is_an_error_naming_file_and_place(tmp_path, content, message):
    path, error = bad(tmp_path, content)
    assert error.startswith(f"{path}") and error.endswith(message), error


def test_invalid_json_and_bytes(tmp_path):
    path, error = bad(tmp_path, '{"data": [\n  {"title": "x",}\n]}')
    assert error.startswith(f"{path}:2: not valid JSON (Expecting property name enclosed in double quotes at line 2")
    path, error = bad(tmp_path, b'{"data": [\n"\xff"]}')
    assert error == f"{path}:2: the byte 0xff is not UTF-8."


def test_missing_and_empty_files_and_bad_options(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        read_squad(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="empty"):
        read_squad(write(tmp_path, ""))
    with pytest.raises(ValueError, match="`on_mismatch` must be 'skip' or 'error'"):
        read_squad(write(tmp_path, squad(qa("q1"))), on_mismatch="warn")


@pytest.mark.slow  # the developers' SQuAD v1.1 copy
def test_squad_dev():
    path = shared_data("squad/dev.json")
    examples = read_squad(path, on_mismatch="error")
    assert len(examples) == 4961
    assert len({example.id for example in examples}) == 4961
    assert all(example.answers for example in examples)
    first = examples[0]
    assert first.id == "56be4db0acb8001400a502ec"
    assert first.title == "Super_Bowl_50"
    assert first.answers == ["Denver Broncos"] * 3
    assert all(
        example.context[start : start + len(text)] == text
        for example in examples
        for text, start in zip(example.answers, example.answer_starts)
    )
