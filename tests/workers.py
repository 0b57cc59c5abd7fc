"""Runs programs side by side, as the workers of a multi-worker job on localhost, with a time limit.

    environments = worker_environments(2)          # TF_CONFIG for two workers on free ports
    chief, worker = run_all([command, command], environments, tmp_path, timeout=300)

A worker that never comes up leaves the others waiting for it indefinitely (TensorFlow sets no
limit, and a waiting worker outlives SIGTERM), so `run_all` kills every process at the limit
and fails the test, naming the process and showing the end of its stderr.
"""

import json
import os
import socket
import subprocess
import time

import pytest


def free_ports(count):
    """`count` distinct localhost ports free at the time of the call."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def worker_environments(count):
    """One `{"TF_CONFIG": ...}` per worker of a `count`-worker cluster on localhost."""
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(count)]}
    return [
        {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        for index in range(count)
    ]


def run_all(commands, environments, directory, timeout):
    """Starts every command at once, each with its environment added to this process's, and
    waits at most `timeout` seconds for all of them.

    Returns:
        Each process's stdout. Their stdout and stderr are also kept in `directory`
        (`process-<i>.out`, `.err`).
    """
    processes, logs = [], []
    try:
        for index, (command, environment) in enumerate(zip(commands, environments)):
            stdout, stderr = (open(os.path.join(directory, f"process-{index}.{kind}"), "w+") for kind in ("out", "err"))
            logs.append((stdout, stderr))
            processes.append(
                subprocess.Popen(command, env={**os.environ, **environment}, stdout=stdout, stderr=stderr, text=True)
            )
        deadline = time.monotonic() + timeout
        outputs = []
        for index, (process, (stdout, stderr)) in enumerate(zip(processes, logs)):
            try:
                process.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(
                    f"process {index} of {len(processes)} did not finish within {timeout} s (a multi-worker job "
                    f"waits for every worker in TF_CONFIG to come up). Its stderr ends:\n{_tail(stderr)}"
                )
            if process.returncode != 0:
                pytest.fail(f"process {index} of {len(processes)} exited with {process.returncode}:\n{_tail(stderr)}")
            stdout.seek(0)
            outputs.append(stdout.read())
        return outputs
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for files in logs:
            for file in files:
                file.close()


def _tail(file, characters=3000):
    file.flush()
    file.seek(0)
    return file.read()[-characters:]
