"""No command loses work: inputs are never written over, existing outputs only with --overwrite, and
``train --overwrite`` keeps the old run until the new one has started. Every refusal is one line, exit 2,
with every file on disk unchanged."""
import hashlib
import shutil
from pathlib import Path

import pytest
from PIL import Image

from scvae.cli import main

from .conftest import TINY


def _snapshot(root: Path) -> dict[str, str]:
    """Every file's hash and every folder under ``root``: a refusal may leave neither a changed file nor a
    new empty folder."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
            for p in sorted(root.rglob("*"))}


def _refused(capsys, argv: list[str], watched: Path, needle: str) -> None:
    before = _snapshot(watched)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("scvae: error:") and needle in err, err
    assert _snapshot(watched) == before


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    import skimage.data

    root = tmp_path / "photos"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    photo = skimage.data.astronaut()
    Image.fromarray(photo[:64, :64]).save(root / "a" / "x.png")
    Image.fromarray(photo[64:128, 64:128]).save(root / "b" / "x.png")
    Image.fromarray(photo[128:192, :64]).save(root / "a" / "y.png")
    return root


def test_overwrite_with_bad_data_keeps_the_old_run(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    _refused(capsys, ["train", "--out", str(run), "--overwrite", "--data", str(tmp_path / "missing"),
                      "--no-progress", *TINY], tmp_path, "no such data folder")
    assert not list(tmp_path.glob(".run.replaced-*"))


def test_overwrite_replaces_a_run_once_the_new_one_trains(tiny_run, image_folder, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    old = (run / "checkpoints/last/model.safetensors").read_bytes()
    assert main(["train", "--out", str(run), "--overwrite", "--data", str(image_folder), "--steps", "2",
                 "--no-progress", *TINY, "val_ratio=0.25"]) == 0
    assert (run / "checkpoints/last/model.safetensors").read_bytes() != old
    assert not list(tmp_path.glob(".run.replaced-*"))


def test_reconstruct_never_writes_over_its_input(tiny_run, photos, capsys):
    _refused(capsys, ["reconstruct", "--model", str(tiny_run), str(photos / "a/x.png"), "--out", str(photos / "a")],
             photos, "would overwrite the input")


def test_reconstruct_refuses_two_inputs_with_one_output_name(tiny_run, photos, tmp_path, capsys):
    out = tmp_path / "out"
    _refused(capsys, ["reconstruct", "--model", str(tiny_run), str(photos / "a/x.png"), str(photos / "b/x.png"),
                      "--out", str(out)], tmp_path, "would both be written to")
    assert not out.exists()


def test_existing_outputs_need_overwrite(tiny_run, photos, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["reconstruct", "--model", str(tiny_run), str(photos / "a/y.png"), "--out", str(out)]
    assert main(args) == 0
    _refused(capsys, args, tmp_path, "pass --overwrite")
    assert main([*args, "--overwrite"]) == 0
    codes = tmp_path / "codes.safetensors"
    encode = ["encode", "--model", str(tiny_run), str(photos / "a/y.png"), "--out", str(codes)]
    assert main(encode) == 0
    _refused(capsys, encode, tmp_path, "pass --overwrite")


@pytest.mark.parametrize("argv", [
    ["interpolate", "--model", "{run}", "{a}", "{b}", "--out", "{a}"],
    ["encode", "--model", "{run}", "{a}", "--out", "{tmp}/a_file/codes.safetensors"],
    ["segment", "--model", "{run}", "{a}", "--out", "{tmp}/a_file"],
    ["reconstruct", "--model", "{run}", "{a}", "--out", "{tmp}/a_file"],
])
def test_unusable_output_paths_are_refused_before_any_work(tiny_run, photos, tmp_path, capsys, argv):
    (tmp_path / "a_file").write_text("not a folder")
    fill = {"run": str(tiny_run), "a": str(photos / "a/x.png"), "b": str(photos / "a/y.png"), "tmp": str(tmp_path)}
    _refused(capsys, [part.format(**fill) for part in argv], tmp_path, "")


def test_reconstruct_full_size_keeps_the_photo_size(tiny_run, tmp_path):
    import numpy as np
    import skimage.data

    photo = tmp_path / "photo.png"
    Image.fromarray(skimage.data.coffee()[:90, :123]).save(photo)  # sizes that are not multiples of f
    out = tmp_path / "out"
    assert main(["reconstruct", "--model", str(tiny_run), str(photo), "--out", str(out), "--size", "full",
                 "--side-by-side"]) == 0
    assert Image.open(out / "photo.png").size == (123, 90)
    assert Image.open(out / "photo_side_by_side.png").size[0] > 2 * 123
    assert main(["reconstruct", "--model", str(tiny_run), str(photo), "--out", str(tmp_path / "o2"), "--size", "45"]) == 0
    assert Image.open(tmp_path / "o2" / "photo.png").size == (62, 45)
    assert main(["reconstruct", "--model", str(tiny_run), str(photo), "--out", str(tmp_path / "o3"), "--size", "0"]) == 2
    assert np.asarray(Image.open(out / "photo.png")).std() > 0
