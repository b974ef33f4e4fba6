"""Reliability, third round: an interrupted --overwrite never hides the old run, a start stopped before
its first checkpoint restarts, requests too large for memory are refused in one line, and the last unclean
inputs are refused in one line with nothing on disk changed."""
import gzip
import json
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from scvae.cli import main
from scvae.training import resolve_model_dir

from .conftest import TINY
from .test_output_safety import _refused, _snapshot


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _train(data, out, *extra):
    return main(["train", "--data", str(data), "--out", str(out), "--no-progress", *TINY, "val_ratio=0.25", *extra])


def test_an_overwrite_killed_before_its_first_checkpoint_gives_the_old_run_back(tiny_run, tmp_path, capsys):
    """What kill -9 leaves between the move aside and the first checkpoint: the old run under
    .NAME.replaced-PID of a dead process and a new run dir with only its start files. Any command that
    reads the run puts the old one back."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = _snapshot(run)
    aside = tmp_path / f".run.replaced-{_dead_pid()}"
    run.rename(aside)
    run.mkdir()
    (run / "config.yaml").write_text((aside / "config.yaml").read_text())
    assert resolve_model_dir(run) == run / "checkpoints" / "best"
    assert _snapshot(run) == before and not aside.exists()


def test_an_overwrite_that_saved_a_checkpoint_drops_the_old_run(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    aside = tmp_path / f".run.replaced-{_dead_pid()}"
    shutil.copytree(tiny_run, aside)  # as if the new run had saved its checkpoint before the kill
    assert main(["train", "--out", str(run), "--resume", "--steps", "4", "--no-progress"]) == 0
    assert not aside.exists()


def test_a_start_stopped_before_its_first_checkpoint_restarts_plainly_or_with_resume(image_folder, tmp_path,
                                                                                     monkeypatch, capsys):
    assert _train(image_folder, tmp_path / "straight", "--steps", "6") == 0
    from scvae.training import sampler

    original = sampler.StepSampler.indices

    def interrupt(self, at):
        if at == 0:
            raise KeyboardInterrupt
        return original(self, at)

    monkeypatch.setattr(sampler.StepSampler, "indices", interrupt)
    assert _train(image_folder, tmp_path / "b", "--steps", "6") == 2  # SIGTERM during start-up, no step done
    monkeypatch.setattr(sampler.StepSampler, "indices", original)
    assert {p.name for p in (tmp_path / "b").iterdir()} - {"tensorboard"} == {"config.yaml", "run_info.json"}
    assert _train(image_folder, tmp_path / "b", "--steps", "6") == 0  # no --overwrite needed: nothing to lose
    a = load_file(str(tmp_path / "straight/checkpoints/last/model.safetensors"))
    b = load_file(str(tmp_path / "b/checkpoints/last/model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_of_a_run_with_no_checkpoint_yet_starts_it(image_folder, tmp_path, monkeypatch, capsys):
    from scvae.training import sampler

    original = sampler.StepSampler.indices
    monkeypatch.setattr(sampler.StepSampler, "indices", lambda self, at: (_ for _ in ()).throw(KeyboardInterrupt))
    assert _train(image_folder, tmp_path / "run", "--steps", "3") == 2
    monkeypatch.setattr(sampler.StepSampler, "indices", original)
    assert main(["train", "--out", str(tmp_path / "run"), "--resume", "--no-progress"]) == 0
    assert (tmp_path / "run/checkpoints/last/model.safetensors").is_file()


@pytest.mark.parametrize("size", ["100000", "99999999999999999999", "full"])
def test_images_too_large_for_memory_are_refused_with_what_would_fit(size, tiny_run, tmp_path, capsys, monkeypatch):
    import scvae.resources

    Image.fromarray(np.zeros((600, 800, 3), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(scvae.resources, "available_bytes", lambda device="cpu": 20_000_000)  # 20 MB free
    for command in ("reconstruct", "encode"):
        out = tmp_path / ("out" if command == "reconstruct" else "codes.safetensors")
        _refused(capsys, [command, "--model", str(tiny_run), str(tmp_path / "big.png"), "--out", str(out),
                          "--size", size], tmp_path, "or less would fit")
        assert not out.is_file() and not (out.is_dir() and any(out.iterdir()))


def test_a_model_config_of_absurd_width_is_refused_before_it_is_built(tiny_run, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_run / "checkpoints" / "best", model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "ch": 100000}))
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "x.png")
    _refused(capsys, ["reconstruct", "--model", str(model), str(tmp_path / "x.png"), "--out", str(tmp_path / "o")],
             tmp_path, "TB but")
    _refused(capsys, ["train", "--out", str(tmp_path / "run"), "model.ch=100000"], tmp_path, "TB but")


def _bad_model(tiny_run: Path, root: Path, edit) -> Path:
    model = root / "model"
    shutil.copytree(tiny_run / "checkpoints" / "best", model)
    edit(model)
    return model


def _nan_weights(model: Path) -> None:
    state = load_file(str(model / "model.safetensors"))
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = torch.full_like(state[key], float("nan"))
    save_file(state, str(model / "model.safetensors"))


def _edit_config(model: Path, **changes) -> None:
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, **changes}))


@pytest.mark.parametrize("edit, message", [
    (lambda m: (m / "config.json").write_bytes(b'{"model_type": "scvae", "x": "\xff"}'), "not a UTF-8 text file"),
    (lambda m: _edit_config(m, ch_mult="abc"), "ch_mult must be a list of positive integers, got 'abc'"),
    (_nan_weights, "hold NaN or infinite values"),
])
def test_damaged_saved_models_are_one_line(edit, message, tiny_run, tmp_path, capsys):
    model = _bad_model(tiny_run, tmp_path, edit)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "x.png")
    _refused(capsys, ["encode", "--model", str(model), str(tmp_path / "x.png"), "--out",
                      str(tmp_path / "c.safetensors")], tmp_path, message)


def test_config_files_that_are_not_text_or_are_folders(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_bytes(b"model:\n  ch: \xff\xfe\n")
    _refused(capsys, ["train", "--config", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "r")], tmp_path,
             "bad.yaml: not a UTF-8 text file")
    (tmp_path / "folder.yaml").mkdir()
    _refused(capsys, ["train", "--config", str(tmp_path / "folder.yaml"), "--out", str(tmp_path / "r")], tmp_path,
             "is a folder; expected a file of a YAML config")


def test_a_missing_local_run_is_named_not_looked_up_on_the_hub(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "x.png")
    _refused(capsys, ["reconstruct", "--model", "runs/nope", "x.png", "--out", "o"], tmp_path,
             "runs/nope: no such run or model directory")


def test_an_idx_file_with_a_zero_size_dimension(tmp_path, capsys):
    data = tmp_path / "mnist"
    data.mkdir()
    (data / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(struct.pack(">HBBIII", 0, 8, 3, 5, 0, 28)))
    _refused(capsys, ["train", "--data", str(data), "--out", str(tmp_path / "r")], tmp_path, "zero-size dimension")


def test_nan_in_a_float_cifar_batch_is_refused_not_cast(tiny_run, tmp_path, capsys):
    data = tmp_path / "cifar"
    data.mkdir()
    values = np.random.default_rng(0).integers(0, 256, (4, 3072)).astype(np.float32)
    values[1, 7] = np.nan
    with open(data / "data_batch_1", "wb") as f:
        pickle.dump({b"data": values, b"labels": [0, 1, 2, 3]}, f)
    _refused(capsys, ["train", "--data", str(data), "--out", str(tmp_path / "r")], tmp_path, "integer pixel values")
    _refused(capsys, ["eval", "--model", str(tiny_run), "--data", str(data), "--out", str(tmp_path / "e")], tmp_path,
             "integer pixel values")


def test_report_never_writes_over_figures_beside_it(tiny_run, tmp_path, capsys):
    (tmp_path / "r_files").mkdir()
    (tmp_path / "r_files" / "usage.png").write_bytes(b"someone's figure")
    _refused(capsys, ["report", str(tiny_run), "--out", str(tmp_path / "r.html")], tmp_path,
             "usage.png: already exists; pass --overwrite")


def test_markup_in_folder_names_is_escaped_in_tables():
    from scvae.evaluation.report import markdown_table

    table = markdown_table({"run_[x](http://e.vil)|*b*\x1b[31m": {"psnr": 1.0}}, ["psnr"])
    row = table.splitlines()[-1]
    assert row.count("|") - row.count("\\|") == 3  # the row's cell borders only
    assert "\x1b" not in table and "\\[x\\]" in table and "\\*b\\*" in table and "\\_" in table
