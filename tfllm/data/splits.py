"""Holding out the end of a file for validation."""

import os


def hold_out_lines(path, output_dir, fraction, lines=None, header_lines=0):
    """Writes the first lines of `path` to `train` and the last `fraction` to `validation`.

    The files go to `output_dir/data/{train,validation}<extension of path>`; the first
    `header_lines` (a TSV/CSV header) are copied to both. Lines are split at "\\n" and copied
    byte for byte: nothing is decoded, so line ends and bytes that are not UTF-8 stay as they
    are for the reader of the split files to judge.

    Args:
        path: the file to split (names the error messages and the extension).
        output_dir: where the `data/` folder goes.
        fraction: the share held out, in (0, 1).
        lines: the lines (strings, with their line ends) to split instead of reading `path`
            (already preprocessed); written as UTF-8.
        header_lines: how many leading lines are a header.

    Returns:
        `(train_path, validation_path)`.

    Raises:
        ValueError when the file has no content or too few lines to split.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"The held-out fraction must be in (0, 1). Received: {fraction}")
    if lines is None:
        with open(path, "rb") as file:
            lines = file.readlines()
    else:
        lines = [line.encode("utf-8") for line in lines]
    header, rows = lines[:header_lines], lines[header_lines:]
    if not any(row.strip() for row in rows):
        raise ValueError(f"{path} is empty.")
    cut = int(len(rows) * (1 - fraction))
    if not 0 < cut < len(rows):
        raise ValueError(f"{path} ({len(rows)} lines) is too short to hold out {fraction:.0%} of it.")
    extension = os.path.splitext(path)[1]
    paths = []
    for name, part in [("train", rows[:cut]), ("validation", rows[cut:])]:
        split_path = os.path.join(output_dir, "data", name + extension)
        os.makedirs(os.path.dirname(split_path), exist_ok=True)
        with open(split_path, "wb") as file:
            file.writelines(header + part)
        paths.append(split_path)
    return tuple(paths)
