"""Peak memory of one library's training on one case, measured in a process of its own.

TensorFlow on CPU allocates from the process heap, and an allocator seldom gives memory back,
so the peak of two models trained in one process says nothing about either. This module is
therefore run as a subprocess per (case, library): it imports everything, notes the resident
set size (RSS), builds and compiles the model, trains `steps` steps, and prints a JSON line with
the peak RSS of the process (`VmHWM` from /proc/self/status, i.e. `ru_maxrss`) and that peak
minus the RSS after the imports — the memory the model, its optimizer state, the compiled step
and its activations took.

    python -m benchmarks.memory --case '{"name": "small", ...}' --library tfllm
"""

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _status_mib(field):
    """A `kB` field of /proc/self/status (`VmRSS`, `VmHWM`) in MiB."""
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def measure(spec, library, steps=3):
    """Trains one library's model on `spec` in this process and measures its memory.

    Returns:
        A dict with `peak_rss_mib` and `peak_over_imports_mib`.
    """
    import keras_hub  # noqa: F401  (imported before the baseline, like the rest)
    import tensorflow as tf

    from benchmarks import training

    baseline = _status_mib("VmRSS")
    model = training.build_one(spec, library)
    inputs, targets = training.make_batches(spec, num_batches=1)[0]
    inputs = tf.nest.map_structure(tf.constant, inputs)
    for _ in range(steps):
        model.train_on_batch(inputs, tf.constant(targets))
    # The kernel updates the high-water mark lazily; it can trail the RSS just read.
    peak = max(_status_mib("VmHWM"), _status_mib("VmRSS"))
    return dict(peak_rss_mib=peak, peak_over_imports_mib=peak - baseline, rss_after_imports_mib=baseline)


def measure_in_subprocess(spec, library, steps=3, timeout=1800):
    """Runs `measure` in a fresh Python process (see the module docstring) and returns its dict."""
    command = [sys.executable, "-m", "benchmarks.memory", "--case", json.dumps(spec), "--library", library]
    command += ["--steps", str(steps)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    completed = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=timeout)
    if completed.returncode != 0:
        raise RuntimeError(f"memory measurement of {library} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", required=True, help="the case as JSON (a dict from benchmarks.training.case)")
    parser.add_argument("--library", required=True, choices=["tfllm", "keras-hub"])
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(measure(json.loads(args.case), args.library, args.steps)))


if __name__ == "__main__":
    main()
