"""kill -9 at arbitrary moments, then --resume, until the run finishes: no corrupt checkpoint at any point,
and the final weights equal an uninterrupted run's bit for bit."""
import os
import random
import signal
import subprocess
import sys
import time

import pytest

import torch
from safetensors.torch import load_file

from scvae.training.checkpoint import load_trainer_state, recover_checkpoint

from .conftest import TINY

ARGS = [*TINY, "val_ratio=0.25", "steps=40", "save_every=3", "val_every=10", "log_every=1"]


def _launch(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "scvae", *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_kill_9_loop_then_resume_is_bit_identical(image_folder, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    straight_run = _launch("train", "--data", str(image_folder), "--out", str(straight), "--no-progress", *ARGS)
    assert straight_run.wait(timeout=300) == 0  # same thread count as the killed runs: same float sums
    rng = random.Random(0)
    kills, steps_seen = 0, []
    for attempt in range(12):
        last = killed / "checkpoints" / "last"
        if recover_checkpoint(last):  # what a resume sees: a complete checkpoint, never a torn one
            steps_seen.append(int(load_trainer_state(last)["step"]))
            load_file(str(last / "model.safetensors"))
            if steps_seen[-1] == 40:  # killed after its final save: finished
                break
            argv = ["train", "--out", str(killed), "--resume", "--no-progress"]
        else:
            argv = ["train", "--data", str(image_folder), "--out", str(killed), "--no-progress", "--overwrite", *ARGS]
        proc = _launch(*argv)
        if kills < 4:
            time.sleep(rng.uniform(2.0, 6.0))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        _, err = proc.communicate(timeout=300)
        assert proc.returncode in (0, -signal.SIGKILL) and "Traceback" not in err, err[-2000:]
        if proc.returncode == 0:
            break
    assert kills >= 1 and int(load_trainer_state(killed / "checkpoints" / "last")["step"]) == 40
    assert steps_seen == sorted(steps_seen)  # progress is never lost beyond the last save
    a, b = load_file(str(straight / "checkpoints/last/model.safetensors")), load_file(
        str(killed / "checkpoints/last/model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_write_killed_before_its_rename_leaves_the_old_config(tmp_path, monkeypatch):
    """The CI failure this pins: a kill while ``config.yaml`` was rewritten on resume left it empty, and the
    next resume refused the run. Now the file is replaced by a rename, so it is the old or the new one."""
    from scvae.config import load_run_config, resolve_config, save_run_config

    path = tmp_path / "config.yaml"
    save_run_config(resolve_config("small-32", "scvae", overrides=["train.steps=40"]), path)

    def killed(*args):
        raise KeyboardInterrupt  # stands in for the SIGKILL: nothing after this point runs

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        save_run_config(resolve_config("small-32", "scvae", overrides=["train.steps=80"]), path)
    assert load_run_config(path).train.steps == 40
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]  # no temp file left behind
