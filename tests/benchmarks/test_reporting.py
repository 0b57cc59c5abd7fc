"""`benchmarks.reporting`: the command line and the two result files every benchmark writes."""

import json

from benchmarks import reporting


def test_write_makes_the_folder_and_drops_an_extension(tmp_path):
    report = dict(settings=dict(repeats=3), results=[dict(speedup=1.25)])

    stem = reporting.write(str(tmp_path / "new" / "bench.json"), report, "| a |\n")

    assert stem == str(tmp_path / "new" / "bench")
    with open(stem + ".json") as file:
        assert json.load(file) == report
    with open(stem + ".md") as file:
        assert file.read() == "| a |\n"


def test_command_names_the_arguments_main_was_given(monkeypatch):
    monkeypatch.setattr("sys.argv", ["run.py", "--quick"])

    assert reporting.command("python -m benchmarks") == "python -m benchmarks --quick"
    assert reporting.command("python -m benchmarks", ["--steps", "2"]) == "python -m benchmarks --steps 2"
    assert reporting.command("python -m benchmarks", []) == "python -m benchmarks"
