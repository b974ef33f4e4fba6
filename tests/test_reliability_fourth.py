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


def test_the_suggested_size_fits_with_room_to_spare_and_the_margin_is_said(tiny_run, tmp_path, capsys, monkeypatch):
    """The advice of a memory refusal is itself accepted when a little less memory is free later."""
    import re

    import numpy as np
    from PIL import Image

    import scvae.resources

    Image.fromarray(np.zeros((600, 800, 3), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(scvae.resources, "available_bytes", lambda device="cpu": 20_000_000)
    out = tmp_path / "codes.safetensors"
    argv = ["encode", "--model", str(tiny_run), str(tmp_path / "big.png"), "--out", str(out)]
    assert main([*argv, "--size", "full"]) == 2
    err = capsys.readouterr().err
    assert "scvae uses at most 80%" in err and "room to spare" in err, err
    suggested = re.search(r"--size (\d+) or less", err)[1]
    monkeypatch.setattr(scvae.resources, "available_bytes", lambda device="cpu": 15_000_000)  # 25 % less free
    assert main([*argv, "--size", suggested]) == 0


def test_a_whole_image_pass_that_would_take_hours_is_refused_with_a_size_that_does_not(tiny_run, tmp_path, capsys,
                                                                                        monkeypatch):
    import re

    import numpy as np
    from PIL import Image

    import scvae.resources
    from scvae.training import load_model

    model = load_model(tiny_run)
    small, large = model.inference_flops(64, 64), model.inference_flops(4096, 4096)
    assert large > 4096 * small  # attention: the cost grows faster than the area (64 ** 2 = 4096)
    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(tmp_path / "photo.png")
    monkeypatch.setattr(scvae.resources, "COMPUTE_LIMIT", model.inference_flops(400, 400))
    out = tmp_path / "codes.safetensors"
    argv = ["encode", "--model", str(tiny_run), str(tmp_path / "photo.png"), "--out", str(out)]
    before = _snapshot(tmp_path)
    assert main([*argv, "--size", "1600"]) == 2
    err = capsys.readouterr().err.strip()
    assert "TFLOP in one pass" in err and "--allow-slow" in err and "\n" not in err, err
    assert _snapshot(tmp_path) == before
    suggested = int(re.search(r"--size (\d+) or less", err)[1])
    assert 16 <= suggested < 400
    assert main([*argv, "--size", str(suggested)]) == 0


@pytest.mark.parametrize("argv, needle", [
    (["reconstruct", "--model", "{run}", "{image}", "--out", "{tmp}/new/recon", "--size", "99999999"], "would fit"),
    (["segment-eval", "--model", "{run}", "--images", "{tmp}", "--masks", "{tmp}", "--k", "0", "--out",
      "{tmp}/new/seg"], "k must be"),
    (["export", "--model", "{tmp}/missing", "--out", "{tmp}/new/onnx"], "missing"),
])
def test_a_refused_command_leaves_no_empty_output_folder(argv, needle, tiny_run, image_folder, tmp_path, capsys):
    image = next(image_folder.rglob("*.png"))
    argv = [a.replace("{run}", str(tiny_run)).replace("{image}", str(image)).replace("{tmp}", str(tmp_path))
            for a in argv]
    before = _snapshot(tmp_path)
    assert main(argv) == 2
    assert needle in capsys.readouterr().err
    assert _snapshot(tmp_path) == before and not (tmp_path / "new").exists()
