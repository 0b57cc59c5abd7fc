"""Fault injection for `ResumableBackup`: kills at the write steps of backups, torn files,
another model's backup.

A tiny Keras model (Adam, so the optimizer has state) trains for 3 epochs of 2 steps and
backs up at every epoch end. Every write step of a backup (an HDF5 dataset written, an
`fsync`, a link, a rename) goes through a hook first, which logs it. In-process, the hook
raises at step k: every fsync, link and rename of the first two backups, of a restore that
falls back to the previous backup and of the backup after it, the first, a middle and the
last HDF5 dataset of each, and the deletion when `fit` ends. In subprocesses the kills are
real SIGKILLs: the process kills itself at a write step drawn at random, or is killed from
outside after a random delay (two seeds). Each interrupted run is started again, and

- it resumes from the last complete backup, never an earlier one: the epoch of the last
  backup whose `training_metadata.json` had been renamed into place, with the step count
  of that epoch (so the weights file and the metadata it resumed from are one backup);
- the run that finishes ends with the weights and optimizer state of an uninterrupted run
  in this process, bit for bit. That holds here because the same traced float32 graph runs
  on the same CPU kernels in every process and the data comes in the same order each epoch;
  it is not a claim about other models or hardware;
- no backup is moved aside or deleted while a complete one is on disk.

An in-process "kill" is an exception: a file it interrupts is closed on the way out, where
a kill would leave it cut short, and the fsyncs are skipped (a kill, unlike a power cut,
loses nothing the OS has). One model per width is kept and reset to its initial state for
each in-process run. The subprocess kills are real, with real fsyncs.

Run as a script (`python test_backup_faults.py OUTPUT_DIR KILL_AT`), this file is the
subprocess: it trains in OUTPUT_DIR and SIGKILLs itself at write step KILL_AT (`none`:
never); the final state goes to `final.npz`.
"""

import hashlib
import logging
import os
import signal
import subprocess
import sys
import time

import h5py
import keras
import numpy as np
import pytest

from tfllm.training import ResumableBackup

EPOCHS = 3
STEPS_PER_EPOCH = 2
BATCH_SIZE = 4
METADATA = "training_metadata.json"
WEIGHTS = "latest.weights.h5"


_MODELS = {}


def make_model(width=8):
    """The model in its initial state (what a new process builds with seed 0). One model per
    width is kept and reset for each run, so that its training step is traced only once."""
    if width not in _MODELS:
        keras.utils.set_random_seed(0)
        layers = [keras.Input((4,)), keras.layers.Dense(width, activation="tanh"), keras.layers.Dense(1)]
        model = keras.Sequential(layers)
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse", jit_compile=False)
        model.optimizer.build(model.trainable_variables)
        _MODELS[width] = model, [v.numpy() for v in model.weights], [v.numpy() for v in model.optimizer.variables]
    model, weights, optimizer_state = _MODELS[width]
    for variable, value in zip(model.weights + model.optimizer.variables, weights + optimizer_state):
        variable.assign(value)
    model._initial_epoch = None  # where a restore leaves its epoch; Keras never clears it
    return model


def training_data():
    x = np.random.default_rng(0).normal(size=(STEPS_PER_EPOCH * BATCH_SIZE, 4)).astype("float32")
    return x, np.tanh(x.sum(axis=1, keepdims=True))


class Progress(keras.callbacks.Callback):
    """Appends to `progress.log`: `run` before `fit`, `begin <step count>` after the restore,
    `epoch <n>` at the first epoch, `saved <n> <time>` once the backup of epoch n is written
    (this callback runs after ResumableBackup's `on_epoch_end`), `finished`. Raises
    `Interrupted` at the beginning of epoch `stop_at_epoch`."""

    def __init__(self, log_path, stop_at_epoch=None):
        super().__init__()
        self.log_path, self.stop_at_epoch, self.first_epoch = log_path, stop_at_epoch, True
        log(log_path, "run")

    def on_train_begin(self, logs=None):
        log(self.log_path, f"begin {int(self.model.optimizer.iterations.numpy())}")

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch:
            log(self.log_path, f"epoch {epoch}")
            self.first_epoch = False
        if epoch == self.stop_at_epoch:
            raise Interrupted(f"stopped at the beginning of epoch {epoch}")

    def on_epoch_end(self, epoch, logs=None):
        log(self.log_path, f"saved {epoch + 1} {time.monotonic():.3f}")

    def on_train_end(self, logs=None):
        log(self.log_path, "finished")


class Interrupted(BaseException):
    """Stands in for a kill in-process; a BaseException, so nothing on the way out handles it."""


def log(path, line):
    with open(path, "a") as file:
        file.write(line + "\n")


def train(output_dir, width=8, stop_at_epoch=None):
    """Trains (resuming from `output_dir/backup` if there is one); returns the model."""
    model = make_model(width)
    x, y = training_data()
    progress = Progress(os.path.join(output_dir, "progress.log"), stop_at_epoch)
    callbacks = [ResumableBackup(os.path.join(output_dir, "backup")), progress]
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=callbacks)
    return model


def final_state(model):
    return [v.numpy() for v in model.weights] + [v.numpy() for v in model.optimizer.variables]


def instrument(set_attribute, log_path, on_step, sync=True):
    """Routes every write step of a backup through `on_step(number, args)`, logging it first.

    The steps: each HDF5 dataset written (`h5py.Group.__setitem__`), `os.fsync`, `os.link`,
    `os.replace`, `os.rename`; a link or rename is logged with its source and destination.
    `sync=False` skips the fsyncs themselves (still steps): what a kill, unlike a power cut,
    leaves on disk does not depend on them.
    """
    count = [0]

    def hooked(function, name):
        def step(*args, **kwargs):
            count[0] += 1
            paths = [os.path.basename(arg) for arg in args[:2]] if name in ("link", "replace", "rename") else []
            log(log_path, " ".join(["step", str(count[0]), name, *paths]))
            on_step(count[0], args)
            return function(*args, **kwargs) if sync or name != "fsync" else None

        return step

    for owner, name in [(os, "fsync"), (os, "link"), (os, "replace"), (os, "rename"), (h5py.Group, "__setitem__")]:
        set_attribute(owner, name, hooked(getattr(owner, name), "dataset" if owner is h5py.Group else name))


def runs(output_dir):
    """The lines of `progress.log`, one list per run."""
    path, result = os.path.join(output_dir, "progress.log"), []
    for line in open(path).read().splitlines() if os.path.exists(path) else []:
        if line == "run" or not result:
            result.append([])
        result[-1].append(line)
    return result


def resumable_epochs(lines, last_step_ran, before):
    """The epochs a run killed after logging `lines` may resume from: the last complete
    backup's. A backup is complete once its `training_metadata.json` is renamed into place;
    before the run's first `saved`, the backup it resumed from is the last complete one;
    before it began (killed in the restore), `before`, the epochs it might have resumed from.
    Once a finished run has renamed its backup away to delete it, there is none: epoch 0.
    `last_step_ran`: whether the last logged step ran (None: unknown, a kill from outside).
    """
    begin = [int(line.split()[1]) // STEPS_PER_EPOCH for line in lines if line.startswith("begin ")]
    if not begin:
        return before
    complete = max(begin + [int(line.split()[1]) for line in lines if line.startswith("saved ")])
    tail = lines[max(i for i, line in enumerate(lines) if line.startswith(("begin", "saved"))) + 1 :]
    steps = [line.split()[2:] for line in tail if line.startswith("step ")]
    if not lines[-1].startswith("step "):
        last_step_ran = True

    def happened(is_step):
        """{True} or {False}; both when it is the last step logged and may or may not have run."""
        flags = [is_step(step) for step in steps]
        if any(flags[:-1]) or (flags[-1:] == [True] and last_step_ran):
            return {True}
        return {True, False} if flags[-1:] == [True] and last_step_ran is None else {False}

    epochs = set()
    for finished in happened(lambda step: step[:2] == ["rename", "backup"]):  # deleting it at the end
        for committed in happened(lambda step: step[0] == "replace" and step[-1] == METADATA):
            epochs.add(0 if finished else complete + committed)
    return epochs


def check_resumed(output_dir, expected_epochs, moved_aside_before=()):
    """The newest run in `output_dir` began at one of `expected_epochs`, with the step count
    of that epoch, and moved nothing aside unless no backup was complete (`moved_aside_before`:
    the `backup.unreadable-*` directories there before it ran)."""
    lines = runs(output_dir)[-1]
    begin = [i for i, line in enumerate(lines) if line.startswith("begin ")]
    if begin:  # else killed in the restore
        steps = int(lines[begin[0]].split()[1])
        assert steps % STEPS_PER_EPOCH == 0 and steps // STEPS_PER_EPOCH in expected_epochs, (expected_epochs, lines)
        if steps // STEPS_PER_EPOCH < EPOCHS:  # the metadata's epoch goes with the weights' step count
            assert lines[begin[0] + 1] == f"epoch {steps // STEPS_PER_EPOCH}", lines
    if min(expected_epochs) > 0:
        restore = lines[: begin[0] if begin else len(lines)]
        assert not any(line.startswith("step") and line.split()[2] == "rename" for line in restore), lines
        assert moved_aside(output_dir) == set(moved_aside_before)


def moved_aside(output_dir):
    return {name for name in os.listdir(output_dir) if name.startswith("backup.unreadable")}


def run_chain(output_dir, attempts, run_once):
    """Runs `run_once(output_dir, attempt)` for each attempt until one finishes; after each
    kill, checks that the next run resumes from the last complete backup. `run_once` returns
    whether the run was killed and whether its last logged step ran (None: unknown)."""
    expected = {0}
    for attempt in attempts:
        before = moved_aside(output_dir)
        killed, last_step_ran = run_once(output_dir, attempt)
        check_resumed(output_dir, expected, before)
        if not killed:
            assert runs(output_dir)[-1][-1] == "finished"
            assert not os.path.exists(os.path.join(output_dir, "backup"))  # deleted at the end, as documented
            return
        expected = resumable_epochs(runs(output_dir)[-1], last_step_ran, expected)
    raise AssertionError(f"the last attempt of {attempts} was killed")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: its final state, its write steps (`[name, *paths]`), the number
    of steps done when each epoch's backup was written, and the seconds from the first
    backup written to the last."""
    output_dir = str(tmp_path_factory.mktemp("reference"))
    with pytest.MonkeyPatch.context() as patch:
        instrument(patch.setattr, os.path.join(output_dir, "progress.log"), lambda number, args: None)
        model = train(output_dir)
    (lines,) = runs(output_dir)
    steps = [line.split()[2:] for line in lines if line.startswith("step ")]
    pairs = zip(lines, lines[1:])
    saved = {int(line.split()[1]): int(previous.split()[1]) for previous, line in pairs if line.startswith("saved")}
    assert lines[-1] == "finished" and sorted(saved) == list(range(1, EPOCHS + 1))
    times = [float(line.split()[2]) for line in lines if line.startswith("saved")]
    return final_state(model), steps, saved, times[-1] - times[0]


def assert_same_state(actual, expected):
    assert len(actual) == len(expected)
    for a, b in zip(actual, expected):
        np.testing.assert_array_equal(a, b)


def in_process(output_dir, kill_at):
    """Trains in this process, raising at write step `kill_at` (None: never)."""

    def on_step(number, args):
        if number == kill_at:
            if isinstance(args[0], h5py.Group):
                args[0].file.close()  # left by the kill: nothing in this process opens it again
            raise Interrupted(f"killed at step {number}")

    with pytest.MonkeyPatch.context() as patch:
        instrument(patch.setattr, os.path.join(output_dir, "progress.log"), on_step, sync=False)
        try:
            in_process.model = train(output_dir)
        except Interrupted:
            return True, False
    return False, None


def kill_points(steps, offset):
    """The step numbers of every fsync, link and rename in `steps` (numbered from `offset` + 1),
    and of the first, a middle and the last HDF5 dataset."""
    datasets = [i for i, step in enumerate(steps, offset + 1) if step == ["dataset"]]
    others = [i for i, step in enumerate(steps, offset + 1) if step != ["dataset"]]
    return sorted(others + [datasets[0], datasets[len(datasets) // 2], datasets[-1]])


def test_write_steps_killed_in_process(tmp_path, reference):
    """Killed at each write step of the first two backups but the HDF5 datasets in the middle
    (the third backup's steps are the second's), and at the deletion at the end, the rerun
    resumes from the last complete backup and ends with an uninterrupted run's state."""
    expected_state, steps, saved, _ = reference
    for kill_at in [*kill_points(steps[: saved[1]], 0), *kill_points(steps[saved[1] : saved[2]], saved[1]), len(steps)]:
        output_dir = str(tmp_path / f"kill-{kill_at}")
        os.makedirs(output_dir)
        run_chain(output_dir, [kill_at, None], in_process)
        assert_same_state(final_state(in_process.model), expected_state)


def test_killed_again_after_falling_back_to_the_previous_backup(tmp_path, reference):
    """Killed just before the second backup's metadata replaces the latest (the latest torn,
    the previous complete), the rerun falls back to the previous backup; killed again in that
    restore or at each step of its own first backup but the HDF5 datasets in the middle, the
    third run still resumes from a complete backup."""
    expected_state, steps, _, _ = reference
    commit = [i for i, step in enumerate(steps, 1) if step[0] == "replace" and step[-1] == METADATA][1]
    probe = str(tmp_path / "probe")
    os.makedirs(probe)
    run_chain(probe, [commit, None], in_process)
    rerun = runs(probe)[1]
    assert f"begin {STEPS_PER_EPOCH}" in rerun  # it fell back to the previous backup, epoch 1
    first_save = next(i for i, line in enumerate(rerun) if line.startswith("saved 2 "))
    rerun_steps = [line.split()[2:] for line in rerun[:first_save] if line.startswith("step ")]
    for kill_again_at in kill_points(rerun_steps, 0):
        output_dir = str(tmp_path / f"kill-again-{kill_again_at}")
        os.makedirs(output_dir)
        run_chain(output_dir, [commit, kill_again_at, None], in_process)
        assert_same_state(final_state(in_process.model), expected_state)


@pytest.mark.parametrize("seed, kills", [(1, ["delay", "step"]), (2, ["step"])])
def test_sigkill_at_random_points_in_subprocesses(tmp_path, reference, seed, kills):
    """Real SIGKILLs: from outside after a random delay within the training, or at a random
    write step of the first two backups a run writes (the process kills itself); then a run
    to the end. Each rerun resumes from the last complete
    backup and the end state is an uninterrupted run's."""
    expected_state, _, saved, seconds = reference
    rng = np.random.default_rng(seed)
    output_dir = str(tmp_path / "run")
    os.makedirs(output_dir)

    def run_once(output_dir, attempt):
        command = [sys.executable, os.path.abspath(__file__), output_dir]
        if attempt != "delay":
            child = subprocess.run(command + [str(attempt)], capture_output=True, text=True, timeout=120)
            assert child.returncode in (0, -signal.SIGKILL), child.stderr[-3000:]
            return child.returncode == -signal.SIGKILL, False
        started = len(runs(output_dir))
        child = subprocess.Popen(command + ["none"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            # Until its first backup is written, then a random part of the rest of the training.
            while len(runs(output_dir)) == started or not [line for line in runs(output_dir)[-1] if "saved" in line]:
                assert child.poll() is None, child.stderr.read()[-3000:]
                time.sleep(0.005)
            time.sleep(rng.uniform(0, seconds))  # within the rest of the training, or just after it
            child.send_signal(signal.SIGKILL)
            _, stderr = child.communicate(timeout=120)
        finally:
            child.kill()
        assert child.returncode in (0, -signal.SIGKILL), stderr[-3000:]
        return child.returncode == -signal.SIGKILL, None

    attempts = [int(rng.integers(1, saved[2] + 1)) if kill == "step" else kill for kill in kills]
    run_chain(output_dir, [*attempts, "none"], run_once)
    with np.load(os.path.join(output_dir, "final.npz")) as final:
        assert_same_state([final[f"arr_{i}"] for i in range(len(final.files))], expected_state)


# Torn and foreign backups.


def backup_files(output_dir):
    """`{file name: SHA-256}` of the backup directory."""
    directory = os.path.join(output_dir, "backup")
    hashes = {}
    for name in os.listdir(directory):
        with open(os.path.join(directory, name), "rb") as file:
            hashes[name] = hashlib.sha256(file.read()).hexdigest()
    return hashes


def interrupted_run(output_dir, at_epoch, width=8):
    """A run stopped at the beginning of epoch `at_epoch`: backups of epochs `at_epoch` (the
    latest) and `at_epoch - 1` (the previous) on disk."""
    with pytest.raises(Interrupted):
        train(output_dir, width=width, stop_at_epoch=at_epoch)
    return backup_files(output_dir)


def truncate(path):
    with open(path, "r+b") as file:
        file.truncate(os.path.getsize(path) // 2)


@pytest.mark.parametrize(
    "tear, reason",
    [
        (lambda backup: open(os.path.join(backup, METADATA), "w").close(), f"{METADATA} is unreadable"),
        (lambda backup: truncate(os.path.join(backup, WEIGHTS)), f"{WEIGHTS} has"),
        (lambda backup: os.remove(os.path.join(backup, WEIGHTS)), f"{WEIGHTS} is missing"),
    ],
    ids=["empty-metadata", "truncated-weights", "missing-weights"],
)
def test_a_torn_latest_backup_resumes_from_the_previous(tmp_path, reference, caplog, tear, reason):
    output_dir = str(tmp_path)
    before = interrupted_run(output_dir, at_epoch=2)
    tear(os.path.join(output_dir, "backup"))
    with caplog.at_level(logging.WARNING, logger="tfllm.training.callbacks"):
        with pytest.raises(Interrupted):
            train(output_dir, stop_at_epoch=1)  # stops right after the restore
    check_resumed(output_dir, {1})
    (warning,) = [record.getMessage() for record in caplog.records]
    assert reason in warning and "resuming from the previous backup" in warning and "epoch 1" in warning, warning
    after = backup_files(output_dir)
    for name in (f"{WEIGHTS}.bkp", f"{METADATA}.bkp"):
        assert after[name] == before[name]  # the previous backup, untouched by the restore
    model = train(output_dir)
    check_resumed(output_dir, {1})
    assert_same_state(final_state(model), reference[0])


def test_no_readable_backup_is_moved_aside_and_training_starts_over(tmp_path, reference, caplog):
    output_dir = str(tmp_path)
    interrupted_run(output_dir, at_epoch=2)
    open(os.path.join(output_dir, "backup", METADATA), "w").close()
    truncate(os.path.join(output_dir, "backup", f"{WEIGHTS}.bkp"))
    torn = backup_files(output_dir)
    with caplog.at_level(logging.WARNING, logger="tfllm.training.callbacks"):
        model = train(output_dir)
    check_resumed(output_dir, {0})
    (aside,) = [name for name in os.listdir(output_dir) if name.startswith("backup.unreadable-")]
    os.rename(os.path.join(output_dir, aside), os.path.join(output_dir, "backup"))
    assert backup_files(output_dir) == torn  # every file kept, byte for byte
    (warning,) = [record.getMessage() for record in caplog.records]
    assert f"{METADATA} is unreadable" in warning and f"{WEIGHTS}.bkp has" in warning and aside in warning, warning
    assert "training starts from the beginning" in warning
    assert_same_state(final_state(model), reference[0])


@pytest.mark.parametrize("torn_latest", [False, True], ids=["intact", "torn-latest"])
def test_another_models_backup_is_refused_and_kept(tmp_path, torn_latest):
    output_dir = str(tmp_path)
    interrupted_run(output_dir, at_epoch=2, width=8)
    if torn_latest:  # torn and foreign: the previous backup is read, and it is foreign too
        open(os.path.join(output_dir, "backup", METADATA), "w").close()
    before = backup_files(output_dir)
    with pytest.raises(ValueError) as error:
        train(output_dir, width=16)
    message = str(error.value)
    assert os.path.join(output_dir, "backup") in message and "--output-dir" in message, message
    assert "layers/dense/vars/0 is (4, 8) in the backup and (4, 16) in this model" in message, message
    assert backup_files(output_dir) == before
    assert sorted(os.listdir(output_dir)) == ["backup", "progress.log"]


def test_a_backup_with_other_layer_names_is_the_same_model(tmp_path):
    """Keras names layers `dense_3` and the like by creation order; a backup is matched by
    the structure `save_weights` writes, not by those names."""
    output_dir = str(tmp_path)
    interrupted_run(output_dir, at_epoch=2)
    keras.layers.Dense(1)  # the next model's layers get other automatic names
    with pytest.raises(Interrupted):
        train(output_dir, stop_at_epoch=2)
    check_resumed(output_dir, {2})


def test_a_second_fit_of_the_same_model_starts_where_it_is_told(tmp_path):
    """Keras keeps the epoch a restore set on the model; the next `fit` must not start there."""
    output_dir = str(tmp_path)
    interrupted_run(output_dir, at_epoch=2)
    model = train(output_dir)  # resumes at epoch 2, finishes, deletes the backup
    check_resumed(output_dir, {2})
    x, y = training_data()
    backup = ResumableBackup(os.path.join(output_dir, "backup"))
    history = model.fit(x, y, batch_size=BATCH_SIZE, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=[backup])
    assert len(history.history["loss"]) == EPOCHS


def test_a_gpt_resumes_from_its_backup_and_refuses_another_configs(tmp_path):
    """tfllm's GPT with `create_optimizer` (gradient accumulation adds variables): its own
    backup matches it, and one of a GPT with a wider feed-forward does not."""
    from tfllm.models import GPT
    from tfllm.training import SparseCrossEntropy, create_optimizer

    def gpt(**overrides):
        model = GPT.from_preset("gpt-test", **overrides)
        optimizer = create_optimizer(1e-3, total_steps=4, gradient_accumulation_steps=2)
        model.compile(optimizer=optimizer, loss=SparseCrossEntropy(), run_eagerly=True)
        return model

    ids = np.random.default_rng(0).integers(0, 512, size=(4, 16)).astype("int32")
    inputs = {"token_ids": ids, "padding_mask": np.ones_like(ids)}

    def fit(model, *callbacks):
        backup = ResumableBackup(str(tmp_path / "backup"))
        return model.fit(inputs, ids, batch_size=2, epochs=2, verbose=0, callbacks=[backup, *callbacks])

    with pytest.raises(Interrupted):
        fit(gpt(), Progress(str(tmp_path / "progress.log"), stop_at_epoch=1))  # backed up after epoch 0
    message = r"intermediate_dense/vars/0 is \(32, 64\) in the backup and \(32, 128\) in this model"
    with pytest.raises(ValueError, match=message):
        fit(gpt(intermediate_dim=128))
    assert len(fit(gpt()).history["loss"]) == 1  # resumed after epoch 0


def test_a_backup_written_by_keras_is_resumed(tmp_path, reference):
    output_dir = str(tmp_path)
    model = make_model()
    x, y = training_data()
    keras_backup = keras.callbacks.BackupAndRestore(os.path.join(output_dir, "backup"), double_checkpoint=True)
    with pytest.raises(Interrupted):
        model.fit(x, y, batch_size=BATCH_SIZE, epochs=EPOCHS, shuffle=False, verbose=0,
                  callbacks=[keras_backup, Progress(os.path.join(output_dir, "progress.log"), stop_at_epoch=2)])
    model = train(output_dir)
    check_resumed(output_dir, {2})
    assert_same_state(final_state(model), reference[0])


if __name__ == "__main__":
    output_dir, kill_at = sys.argv[1], sys.argv[2]

    def kill_self(number, args):
        if str(number) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    instrument(setattr, os.path.join(output_dir, "progress.log"), kill_self)
    model = train(output_dir)
    np.savez(os.path.join(output_dir, "final.npz"), *final_state(model))
