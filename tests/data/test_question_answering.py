"""question_answering_windows / _dataset: answer positions on the pieces of the answer's words,
windows without the answer pointing at [CLS], long contexts read whole."""

import numpy as np
import pytest

from tfllm.data import QAExample, question_answering_dataset, question_answering_windows
from tfllm.tokenizers import WordPieceTokenizer

VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "where", "is", "the", "cat", "in", "paris", "new", "york", "?", ".", "##s"]


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer(VOCABULARY, lowercase=True, strip_accents=True)


def example(question, context, answer, occurrence=0, id="q"):
    start = -1
    for _ in range(occurrence + 1):
        start = context.index(answer, start + 1)
    return QAExample(id=id, question=question, context=context, answers=[answer], answer_starts=[start], title="t")


def pieces(token_ids, first, last):
    return [VOCABULARY[i] for i in token_ids[first : last + 1]]


def test_the_answer_positions_are_its_first_and_last_pieces(tokenizer):
    examples = [example("Where is the cat?", "The cats is in New York.", "New York"), example("where?", "cats in Paris", "cats")]
    token_ids, segment_ids, starts, ends = question_answering_windows(examples, tokenizer, sequence_length=32)
    assert len(token_ids) == 2
    assert pieces(token_ids[0], starts[0], ends[0]) == ["new", "york"]
    assert pieces(token_ids[1], starts[1], ends[1]) == ["cat", "##s"]  # the whole word, both pieces
    assert segment_ids[0][starts[0]] == 1 and token_ids[0][-1] == 3


def test_a_long_context_gives_windows_and_only_those_holding_the_answer_point_at_it(tokenizer):
    context = "the cat is in the cat . " * 5 + "the cat is in Paris ."
    examples = [example("where is the cat ?", context, "Paris")]
    token_ids, _, starts, ends = question_answering_windows(examples, tokenizer, sequence_length=16, stride=4)
    assert len(token_ids) > 3 and all(len(ids) <= 16 for ids in token_ids)
    answered = [i for i in range(len(token_ids)) if starts[i] != 0]
    assert answered and answered[-1] == len(token_ids) - 1
    for i in range(len(token_ids)):
        if starts[i]:
            assert pieces(token_ids[i], starts[i], ends[i]) == ["paris"]
        else:
            assert ends[i] == 0 and VOCABULARY.index("paris") not in token_ids[i].tolist()


def test_an_answer_cut_by_a_window_edge_points_at_cls(tokenizer):
    # "new york" straddles windows of 2 context pieces stride 1: only the window holding both counts.
    examples = [example("where?", "in the new york", "new york")]
    token_ids, _, starts, ends = question_answering_windows(examples, tokenizer, sequence_length=8, stride=1, max_question_length=2)
    answered = [(pieces(ids, s, e)) for ids, s, e in zip(token_ids, starts, ends) if s]
    assert answered == [["new", "york"]] and (starts == 0).sum() == len(token_ids) - 1


def test_unanswered_examples_are_skipped_and_bad_offsets_refused(tokenizer):
    good = example("where?", "in paris", "paris")
    empty = QAExample(id="e", question="where?", context="in paris", answers=[], answer_starts=[], title="t")
    token_ids, *_ = question_answering_windows([good, empty], tokenizer, sequence_length=16)
    assert len(token_ids) == 1
    with pytest.raises(ValueError, match="None of the 1 examples"):
        question_answering_windows([empty], tokenizer, sequence_length=16)
    bad = QAExample(id="b", question="where?", context="in paris", answers=["paris"], answer_starts=[7], title="t")
    with pytest.raises(ValueError, match="'b'.*outside its context"):
        question_answering_windows([bad], tokenizer, sequence_length=16)


def test_batches_are_padded_named_for_the_model_outputs_and_bucketed(tokenizer):
    examples = [example("where is the cat ?", "the cat is in paris .", "paris", id=str(i)) for i in range(5)]
    batches = list(question_answering_dataset(examples, tokenizer, 32, batch_size=2, shuffle_buffer=0))
    assert len(batches) == 3
    features, labels = batches[0]
    assert features["token_ids"].shape == (2, 32) and set(labels) == {"start_logits", "end_logits"}
    ids = features["token_ids"][0].numpy()
    assert VOCABULARY[ids[labels["start_logits"][0]]] == "paris" == VOCABULARY[ids[labels["end_logits"][0]]]
    assert features["padding_mask"][0].numpy().sum() == np.count_nonzero(ids)
    bucketed = list(question_answering_dataset(examples, tokenizer, 32, batch_size=2, shuffle_buffer=0, boundaries=(16,)))
    assert [b[0]["token_ids"].shape[1] for b in bucketed] == [16, 16, 16]
