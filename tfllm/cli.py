"""The `tfllm` command.

    tfllm presets              the preset table, each model built to count its parameters
    tfllm presets --no-count   the table without building (instant)
    tfllm summary PRESET       build one preset and print its Keras summary
"""

import argparse
import sys


def _build(preset):
    from tfllm.models import BERT, BERT_PRESETS, GPT

    return (BERT if preset in BERT_PRESETS else GPT)(preset)


def _presets(args):
    from tfllm.models import BERT_PRESETS, PRESETS

    columns = ["preset", "model", "layers", "heads", "hidden", "feed-forward", "vocabulary", "max length"]
    if args.count:
        columns.append("parameters")
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for name, config in PRESETS.items():
        row = [
            f"`{name}`",
            "BERT" if name in BERT_PRESETS else "GPT",
            config["num_layers"],
            config["num_heads"],
            config["hidden_dim"],
            config["intermediate_dim"],
            config["vocabulary_size"],
            config["max_sequence_length"],
        ]
        if args.count:
            row.append(f"{_build(name).count_params():,}")
        print("| " + " | ".join(str(cell) for cell in row) + " |", flush=True)
    return 0


def _summary(args):
    from tfllm.models import PRESETS

    if args.preset not in PRESETS:
        print(f"Unknown preset {args.preset!r}. Available: {', '.join(PRESETS)}", file=sys.stderr)
        return 2
    _build(args.preset).summary()
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tfllm", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    presets = commands.add_parser("presets", help="list the model presets")
    presets.add_argument("--no-count", dest="count", action="store_false", help="don't build models to count parameters")
    presets.set_defaults(run=_presets)
    summary = commands.add_parser("summary", help="print a preset's Keras model summary")
    summary.add_argument("preset")
    summary.set_defaults(run=_summary)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
