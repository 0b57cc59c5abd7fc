"""What every benchmark script records: the command that ran it, and its two result files.

Each script writes everything it measured to `<output>.json` and the table README quotes to
`<output>.md`. Nothing here imports TensorFlow (the GPU benchmark runs without it).
"""

import json
import os
import sys


def command(prefix, argv=None):
    """The command line that reproduces this run: `prefix` and the script's arguments.

    Args:
        prefix: str, how the script is started (e.g. `"python -m benchmarks.export"`).
        argv: the arguments `main` was given, or `None` for the process's own (`sys.argv[1:]`).
    """
    arguments = sys.argv[1:] if argv is None else list(argv)
    return " ".join([prefix, *arguments])


def write(output, report, table):
    """Writes `report` to `<output>.json` and the markdown `table` to `<output>.md`.

    Args:
        output: str, the path without extension (an extension given is dropped); its folder is
            created if missing.
        report: a JSON-serializable dict.
        table: str, the markdown.

    Returns:
        The path without extension.
    """
    output = os.path.splitext(output)[0]
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output + ".json", "w") as file:
        json.dump(report, file, indent=2)
    with open(output + ".md", "w") as file:
        file.write(table)
    return output
