"""End-to-end: the CLI trains a tiny model in a temp dir, resumes bit-identically, reconstructs, encodes."""
import json

import pytest
import torch
from safetensors.torch import load_file

from scvae.cli import main
from scvae.data import image_batch
from scvae.sparse import load_codes
from scvae.training import load_model
from scvae.training import sampler as sampler_module

from .conftest import TINY, interrupted_then_resumed


def _train(image_folder, out, *extra):
    return main(["train", "--data", str(image_folder), "--out", str(out), "--no-progress", *TINY,
                 "val_ratio=0.25", *extra])


@pytest.fixture
def trained_run(image_folder, tmp_path):
    out = tmp_path / "run"
    assert _train(image_folder, out, "--steps", "3") == 0
    return out


def test_train_writes_a_complete_run_dir(trained_run, capsys):
    for name in ("config.yaml", "metrics.jsonl", "reconstructions.png", "checkpoints/best/model.safetensors",
                 "checkpoints/last/model.safetensors", "checkpoints/last/trainer_state.pt"):
        assert (trained_run / name).is_file(), name
    rows = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["split"] == "val"]
    assert val and {"psnr", "ssim", "active_mean", "atoms_used_frac"} <= set(val[-1])
    assert [r["step"] for r in rows if r["split"] == "train"] == [1, 2, 3]


def test_existing_run_dir_is_never_overwritten(trained_run, image_folder, capsys):
    before = (trained_run / "checkpoints/last/model.safetensors").read_bytes()
    assert _train(image_folder, trained_run, "--steps", "3") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--resume or --overwrite" in err
    assert (trained_run / "checkpoints/last/model.safetensors").read_bytes() == before


def test_interrupted_then_resumed_run_is_bit_identical(image_folder, tmp_path, monkeypatch, capsys):
    """With masked inputs (mask_ratio), whose masks must also be a function of the step."""
    assert _train(image_folder, tmp_path / "straight", "--steps", "6", "mask_ratio=0.25") == 0
    interrupted_then_resumed(monkeypatch, lambda out: _train(image_folder, out, "--steps", "6", "mask_ratio=0.25"),
                             tmp_path / "resumed", 4)
    assert "interrupted at step 4" in capsys.readouterr().err
    a = load_file(str(tmp_path / "straight/checkpoints/last/model.safetensors"))
    b = load_file(str(tmp_path / "resumed/checkpoints/last/model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_validation_cadence_does_not_change_the_weights(trained_run, image_folder, tmp_path):
    """What compare's run reuse relies on: validating (and logging, saving) at other steps trains the
    same model. Also: val_every 0 validates about 20 times a run."""
    from scvae.config import resolve_config

    assert _train(image_folder, tmp_path / "often", "--steps", "3", "val_every=1", "save_every=1", "log_every=3") == 0
    a = load_file(str(trained_run / "checkpoints/last/model.safetensors"))
    b = load_file(str(tmp_path / "often/checkpoints/last/model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    validated = [r["step"] for r in map(json.loads, (tmp_path / "often/metrics.jsonl").read_text().splitlines())
                 if r["split"] == "val"]
    assert validated == [1, 2, 3]
    assert resolve_config("small-32", "scvae").train.validation_interval == 75


def test_reconstruct_and_encode(trained_run, image_folder, tmp_path, capsys):
    images = sorted(str(p) for p in image_folder.rglob("*.jpg"))[:2]
    assert main(["reconstruct", "--model", str(trained_run), *images, "--out", str(tmp_path / "rec")]) == 0
    from PIL import Image

    for p in images:
        out = tmp_path / "rec" / (p.rsplit("/", 1)[1].rsplit(".", 1)[0] + ".png")
        assert Image.open(out).size == (16, 16)
    capsys.readouterr()
    assert main(["encode", "--model", str(trained_run), *images, "--out", str(tmp_path / "codes.safetensors")]) == 0
    stored = load_file(str(tmp_path / "codes.safetensors"))
    codes = load_codes(str(tmp_path / "codes.safetensors"))
    assert codes.shape == (2, 36, 8, 8)
    model = load_model(trained_run)
    one_by_one = [model.encode(image_batch([p], model.resolution, model.in_channels)).codes for p in images]
    assert torch.equal(codes, torch.cat(one_by_one))  # as the CLI encodes them: storing loses nothing
    # the tiny run keeps up to 33 of its 36 atoms: 6 bytes per kept atom would exceed 4 per atom dense
    assert set(stored) == {"codes"}
    assert "active atoms per code" in capsys.readouterr().out


def test_encode_whole_images_on_their_own_grids(trained_run, image_folder, tmp_path):
    """--size full: each image's codes on a ceil(H/f) x ceil(W/f) grid, decoding back to the image's
    reconstruction at any size."""
    import json

    from safetensors import safe_open

    images = sorted(str(p) for p in image_folder.rglob("*.jpg"))[:2]  # 40 x 48: resized to 21 x 25, odd sizes
    out = tmp_path / "codes.safetensors"
    assert main(["encode", "--model", str(trained_run), *images, "--out", str(out), "--size", "21"]) == 0
    with safe_open(str(out), "pt") as f:
        sizes = json.loads(f.metadata()["pixel_sizes"])
    codes = load_codes(str(out))
    model = load_model(trained_run)
    for (h, w), c in zip(sizes, codes):
        assert min(h, w) == 21 and c.shape == (1, 36, -(-h // 2), -(-w // 2))
        assert torch.isfinite(model.decode(c).sample).all()


@pytest.mark.parametrize("argv, message", [
    (["train", "--steps", "0"], "steps must be a positive integer"),
    (["train", "lr=0"], "lr must be a positive number"),
    (["train", "--preset", "huge"], "unknown preset 'huge'"),
    (["train", "model.nope=1"], "unknown model config key 'nope'"),
    (["train", "nope=1"], "unknown config key 'nope'"),
    (["train", "model.z_channels=15", "model.n_atoms=30"], "perfect square"),
    (["train", "--data", "/definitely/missing"], "no such data folder"),
    (["train", "--config", "/definitely/missing.yaml"], "config file not found"),
    (["reconstruct", "--model", "/definitely/missing", "x.png", "--out", "o"], "no such image file"),
    (["encode", "--model", "/definitely/missing", "--out", "c.safetensors", __file__], "no such run or model"),
])
def test_bad_input_gives_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("scvae: error:") and message in err and "\n" not in err


def test_resume_without_checkpoint_and_empty_data(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    assert "no images found" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "r2"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_truncated_checkpoint_is_a_one_line_error(trained_run, image_folder, tmp_path, capsys):
    weights = trained_run / "checkpoints/best/model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    image = str(sorted(image_folder.rglob("*.png"))[0])
    assert main(["reconstruct", "--model", str(trained_run), image, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "truncated" in err and "\n" not in err


def _weights(run):
    return load_file(str(run / "checkpoints/last/model.safetensors"))


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_saves_like_ctrl_c_and_resumes_bit_identically(image_folder, tmp_path, monkeypatch, capsys):
    import os
    import signal

    assert _train(image_folder, tmp_path / "straight", "--steps", "6") == 0
    original = sampler_module.StepSampler.indices

    def terminate_at_4(self, step):
        if step == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, step)

    monkeypatch.setattr(sampler_module.StepSampler, "indices", terminate_at_4)
    assert _train(image_folder, tmp_path / "resumed", "--steps", "6") == 2
    lines = capsys.readouterr().err.strip().splitlines()  # progress log lines, then the error
    assert lines[-1].startswith("scvae: error: interrupted at step 4") and all(l.startswith("scvae: ") for l in lines)
    monkeypatch.setattr(sampler_module.StepSampler, "indices", original)
    assert main(["train", "--out", str(tmp_path / "resumed"), "--resume", "--no-progress"]) == 0
    assert _same(_weights(tmp_path / "straight"), _weights(tmp_path / "resumed"))
    rows = [json.loads(line) for line in (tmp_path / "resumed/metrics.jsonl").read_text().splitlines()]
    steps = [(r["split"], r["step"]) for r in rows]
    assert len(steps) == len(set(steps))  # no step logged twice across the interruption


def test_interrupt_during_validation_saves_the_step_its_weights_belong_to(image_folder, tmp_path, monkeypatch):
    from scvae.training import trainer

    assert _train(image_folder, tmp_path / "straight", "--steps", "6") == 0
    real = trainer.evaluate_reconstruction

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "evaluate_reconstruction", interrupted)  # first validation is after step 3
    assert _train(image_folder, tmp_path / "resumed", "--steps", "6") == 2
    from scvae.training.checkpoint import load_trainer_state

    assert load_trainer_state(tmp_path / "resumed/checkpoints/last")["step"] == 3
    monkeypatch.setattr(trainer, "evaluate_reconstruction", real)
    assert main(["train", "--out", str(tmp_path / "resumed"), "--resume", "--no-progress"]) == 0
    assert _same(_weights(tmp_path / "straight"), _weights(tmp_path / "resumed"))


def test_resume_recovers_a_checkpoint_caught_between_its_two_renames(trained_run):
    last = trained_run / "checkpoints" / "last"
    last.rename(trained_run / "checkpoints" / ".last.tmp-99999")  # as a kill between the renames leaves it
    assert main(["train", "--out", str(trained_run), "--resume", "--steps", "4", "--no-progress"]) == 0
    assert last.is_dir() and not list((trained_run / "checkpoints").glob(".last.*"))


def test_finished_run_says_how_to_extend_and_extension_keeps_the_lr_floor(trained_run, capsys):
    assert main(["train", "--out", str(trained_run), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "finished at step 3 of 3" in err and "--steps N" in err and err.count("\n") == 0
    assert main(["train", "--out", str(trained_run), "--resume", "--steps", "5", "--no-progress"]) == 0
    rows = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    lrs = {r["step"]: r["lr"] for r in rows if r["split"] == "train"}
    floor = 2e-3 * 0.1  # the preset's lr x min_lr_ratio
    assert lrs[4] == pytest.approx(floor) and lrs[5] == pytest.approx(floor)  # the floor, no jump back up


@pytest.mark.parametrize("edit, message", [
    (lambda text: text.replace("steps: 3", "steps: -3"), "steps must be a positive integer"),
    (lambda text: text.replace("model_type: scvae", "model_type: gan"), "unknown model 'gan'"),
    (lambda text: text + "\n  bogus: 1\n", "unknown config key"),
    (lambda text: "{: not yaml", "not valid YAML"),
    (lambda text: "just a string\n", "not an scvae run config"),
])
def test_a_damaged_stored_config_is_one_line_naming_the_file(trained_run, capsys, edit, message):
    config = trained_run / "config.yaml"
    config.write_text(edit(config.read_text()))
    before = (trained_run / "checkpoints/last/model.safetensors").read_bytes()
    assert main(["train", "--out", str(trained_run), "--resume", "--steps", "5", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "config.yaml" in err and message in err, err
    assert (trained_run / "checkpoints/last/model.safetensors").read_bytes() == before


@pytest.mark.parametrize("model_type", ["vae", "vqvae", "vqvae-strong", "rvq", "fsq", "ae"])
def test_every_family_resumes_bit_identically(model_type, image_folder, tmp_path, monkeypatch, capsys):
    """Each family with its preset defaults (the strong VQ and the residual VQ with k-means init and
    dead-code restarts, the VAE sampling its posterior): interrupted at step 4 of 8 and resumed, the final
    weights equal an uninterrupted run's byte for byte."""
    small_codebook = ["model.codebook_size=16"] if model_type in ("vqvae-strong", "rvq") else []
    args = ["--model-type", model_type, "--steps", "8", *[o for o in TINY if "n_atoms" not in o], "val_ratio=0.25",
            "save_every=2", *small_codebook]

    def train(out):
        return main(["train", "--data", str(image_folder), "--out", str(out), "--no-progress", *args])

    assert train(tmp_path / "straight") == 0
    interrupted_then_resumed(monkeypatch, train, tmp_path / "resumed", 4)
    assert _same(_weights(tmp_path / "straight"), _weights(tmp_path / "resumed"))
