"""
Title: Distil a trained model into a smaller student
Description: A fine-tuned classifier, entity tagger or question answerer, or a GPT, teaches a
student with a third of its transformer blocks: the student trains on the labels and on the
teacher's softened predictions (tfllm.compression.Distiller), then is evaluated, saved and
exported like the teacher.

Run:

    python examples/distill.py --teacher runs/sst2-minilm --data sst2/train.tsv \\
        --validation-data sst2/dev.tsv --output-dir runs/sst2-student \\
        --learning-rate 1e-4 --bucket-boundaries 16,32 --batch-size 32 --steps 900

`--teacher` is the `--output-dir` of `finetune_classifier.py`, `finetune_ner.py`,
`finetune_qa.py` or `train_gpt.py`; the run's model says which script trains the student, and
every other flag goes to that script (see its `--help`), with `--distill-from TEACHER`. The
student starts from `--student-layers` of the teacher's blocks, evenly spaced (default a third
of them, at least one), and every other weight of the teacher; it reads the teacher's tokenizer,
and a classifier's or tagger's labels must be the teacher's. `--temperature` (default 2) softens
both models' predictions and `--distill-alpha` (default 0.5) weighs the labels' loss against the
soft targets'; `--hidden-weight W` adds hidden-state matching (each student block's output pulled
to its teacher block's). `--sequence-length` defaults to the teacher's (from its metrics.json). Writes
what the chosen script writes, with `distilled_from` in `metrics.json`.
"""

import argparse
import importlib
import math

import tfllm
from tfllm.training import harness

# Which script trains a student of each kind of teacher.
SCRIPTS = {
    tfllm.models.BERTClassifier: "finetune_classifier",
    tfllm.models.BERTTokenClassifier: "finetune_ner",
    tfllm.models.BERTQuestionAnswerer: "finetune_qa",
    tfllm.models.GPT: "train_gpt",
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="a training script's --output-dir")
    args, rest = parser.parse_known_args(argv)
    if "--distill-from" in rest:
        parser.error("--teacher names the teacher; --distill-from is not taken here")
    teacher = harness.teacher(argparse.Namespace(distill_from=args.teacher))
    script = SCRIPTS.get(type(teacher.model))
    if script is None:
        kinds = ", ".join(kind.__name__ for kind in SCRIPTS)
        raise ValueError(f"--teacher {args.teacher!r} holds a {type(teacher.model).__name__}; students are made of {kinds}.")
    if "--student-layers" not in rest:
        num_layers = getattr(teacher.model, "backbone", teacher.model).num_layers
        rest += ["--student-layers", str(max(1, math.ceil(num_layers / 3)))]
    if "--sequence-length" not in rest and "sequence_length" in teacher.metrics:
        rest += ["--sequence-length", str(teacher.metrics["sequence_length"])]
    return _module(script).main([*rest, "--distill-from", args.teacher])


def _module(name):
    # The scripts sit beside this one: `tfllm.examples` once installed, this folder when run from a clone.
    try:
        return importlib.import_module(f"tfllm.examples.{name}")
    except ImportError:
        return importlib.import_module(name)


if __name__ == "__main__":
    harness.run(main)
