"""Reliability, fourth round. An ``--overwrite`` start killed during its first checkpoint never costs the old
run. Only a complete checkpoint under its final name counts as the new run having started; a temporary
``.last.tmp-PID`` (complete or holding only ``config.json``) does not."""
import shutil
import subprocess
import sys
import textwrap

import pytest

from scvae.cli import main
from scvae.training import resolve_model_dir

from .conftest import TINY
from .test_output_safety import _snapshot
from .test_reliability import _dead_pid


def _killed_overwrite_state(tiny_run, tmp_path, tmp_files):
    """The disk as kill -9 leaves it during the first save of an ``--overwrite`` start: the old run aside,
    the new run's start files, and ``checkpoints/.last.tmp-PID`` holding ``tmp_files``."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = _snapshot(run)
    aside = tmp_path / f".run.replaced-{_dead_pid()}"
    run.rename(aside)
    tmp = run / "checkpoints" / f".last.tmp-{_dead_pid()}"
    tmp.mkdir(parents=True)
    (run / "config.yaml").write_text((aside / "config.yaml").read_text())
    for name in tmp_files:
        shutil.copy(aside / "checkpoints" / "last" / name, tmp / name)
    return run, aside, before


@pytest.mark.parametrize("tmp_files", [("config.json",), ("config.json", "model.safetensors", "trainer_state.pt")],
                         ids=["only-config", "complete-copy"])
def test_a_temporary_first_checkpoint_does_not_count_and_the_old_run_comes_back(tiny_run, tmp_path, tmp_files):
    run, aside, before = _killed_overwrite_state(tiny_run, tmp_path, tmp_files)
    assert resolve_model_dir(run) == run / "checkpoints" / "best"  # what scvae reconstruct reads first
    assert _snapshot(run) == before and not aside.exists()


def test_resume_after_a_kill_during_the_first_save_resumes_the_old_run(tiny_run, tmp_path):
    run, aside, before = _killed_overwrite_state(tiny_run, tmp_path, ("config.json",))
    assert main(["train", "--out", str(run), "--resume", "--steps", "4", "--no-progress"]) == 0
    assert not aside.exists() and (run / "checkpoints" / "last" / "model.safetensors").is_file()


KILL_DURING_FIRST_SAVE = textwrap.dedent("""
    import os, signal, sys
    from scvae.models import base
    from scvae.cli import main

    original = base.AutoencoderModel.save_pretrained

    def save_then_die(self, directory, *args, **kwargs):
        original(self, directory, *args, **kwargs)   # config.json and model.safetensors are on disk ...
        os.kill(os.getpid(), signal.SIGKILL)         # ... trainer_state.pt and the rename are not

    base.AutoencoderModel.save_pretrained = save_then_die
    main(sys.argv[1:])
""")


def test_a_real_kill_during_the_first_save_of_an_overwrite_loses_no_run(tiny_run, image_folder, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = _snapshot(run)
    argv = ["train", "--out", str(run), "--overwrite", "--data", str(image_folder), "--steps", "2", "--no-progress",
            *TINY, "val_ratio=0.25"]
    process = subprocess.run([sys.executable, "-c", KILL_DURING_FIRST_SAVE, *argv], capture_output=True, timeout=300)
    assert process.returncode == -9, process.stderr.decode()[-2000:]
    assert list(tmp_path.glob(".run.replaced-*")) and list((run / "checkpoints").glob(".*.tmp-*"))
    assert main(["reconstruct", "--model", str(run), str(next(image_folder.rglob("*.png"))),
                 "--out", str(tmp_path / "recon")]) == 0
    assert _snapshot(run) == before and not list(tmp_path.glob(".run.replaced-*"))


def test_a_cpu_checkpoint_has_no_cuda_rng_and_one_from_a_gpu_resumes_on_cpu(tiny_run, tmp_path):
    import torch

    from scvae.training.checkpoint import load_trainer_state

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    state_path = run / "checkpoints" / "last" / "trainer_state.pt"
    state = load_trainer_state(state_path.parent)
    assert "cuda_rng" not in state
    state["cuda_rng"] = torch.stack([torch.get_rng_state()[:16]])  # as a GPU run would have saved one
    torch.save(state, state_path)
    assert main(["train", "--out", str(run), "--resume", "--steps", "4", "--no-progress"]) == 0
