import gzip
import json
import pickle
import struct
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from scvae import ScvaeError
from scvae.cli import main
from scvae.data import open_images
from scvae.evaluation import (CodebookDiagnostics, PosteriorDiagnostics, SparseCodeDiagnostics, psnr_per_image,
                              ssim_per_image)

from .conftest import TINY


def test_psnr_from_known_mse():
    x = torch.full((2, 3, 8, 8), 0.5)
    y = x + torch.tensor([0.1, 0.01]).view(2, 1, 1, 1)  # MSE 1e-2 and 1e-4
    assert torch.allclose(psnr_per_image(x, y), torch.tensor([20.0, 40.0]), atol=1e-4)


def test_ssim_matches_scikit_image_reference():
    import skimage.data

    photo = skimage.data.astronaut()[100:164, 200:264] / 255.0
    rng = np.random.default_rng(0)
    noisy = np.clip(photo + rng.normal(0, 0.08, photo.shape), 0, 1)
    ref = structural_similarity(photo, noisy, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                data_range=1.0, channel_axis=2)
    ours = ssim_per_image(torch.from_numpy(photo).permute(2, 0, 1)[None].float(),
                          torch.from_numpy(noisy).permute(2, 0, 1)[None].float())
    assert float(ours) == pytest.approx(ref, abs=1e-3)


def test_vq_that_uses_three_codes_reports_three():
    d = CodebookDiagnostics(codebook_size=64)
    for _ in range(3):
        d.update(SimpleNamespace(indices=torch.tensor([3, 7, 9, 3, 7, 9]).view(1, 2, 3)))
    r = d.result()
    assert r["codes_used"] == 3 and r["codebook_usage"] == pytest.approx(3 / 64)
    assert r["perplexity"] == pytest.approx(3.0)


def test_vae_dimension_that_carries_nothing_is_inactive():
    d = PosteriorDiagnostics()
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        mean = torch.zeros(8, 2, 2, 2)
        mean[:, 0] = torch.randn(8, 2, 2, generator=g)  # informative channel
        logvar = torch.zeros_like(mean)  # channel 1: posterior = prior, KL 0
        d.update(SimpleNamespace(mean=mean, logvar=logvar))
    r = d.result()
    assert r["units"] == 8 and r["active_units"] == 4  # the 4 positions of channel 0
    assert r["kl_per_channel"][1] == pytest.approx(0.0) and r["channels_collapsed"] == 1


def test_sparse_code_diagnostics_on_constructed_codes():
    codes = torch.zeros(2, 10, 1, 2)
    codes[0, 1, 0, 0] = 2.0  # one-hot code: Hoyer 1
    codes[1, [1, 2, 3], 0, 1] = 1.0
    d = SparseCodeDiagnostics()
    d.update(SimpleNamespace(codes=codes))
    r = d.result()
    assert r["atoms_used"] == 3 and r["atoms_never_active_frac"] == pytest.approx(0.7)
    assert r["active_mean"] == pytest.approx(4 / 4) and r["n_codes"] == 4
    assert d.usage_counts[1] == 2
    assert r["perplexity"] == pytest.approx(2 ** 1.5)  # usage 1/2, 1/4, 1/4: entropy 1.5 bits


def test_atom_perplexity_sees_a_collapse_that_atoms_used_does_not():
    """Every atom fires somewhere, but 6 atoms take 99.9 % of the use: perplexity ~6, not ~K."""
    rows = torch.zeros(10_000, 121)
    rows[:, :6] = 1.0
    rows[torch.arange(115), 6 + torch.arange(115)] = 1.0  # each other atom once
    d = SparseCodeDiagnostics()
    d.update(SimpleNamespace(codes=rows.T.reshape(1, 121, 100, 100)))
    r = d.result()
    assert r["atoms_used"] == 121
    assert 6.0 < r["perplexity"] < 6.5


def test_cifar_pickle_and_mnist_idx_readers(tmp_path):
    data = (np.arange(4 * 3072) % 256).astype(np.uint8).reshape(4, 3072)
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": data, b"labels": [0, 1, 2, 3]}, f)
    images, names = open_images(tmp_path, 32)
    assert len(images) == 4 and images[0].shape == (32, 32, 3)
    assert np.array_equal(images[1][:, :, 0].reshape(-1), data[1, :1024])
    idx = tmp_path / "mnist"
    idx.mkdir()
    raw = struct.pack(">HBBIII", 0, 8, 3, 5, 28, 28) + bytes(range(256)) * 15 + bytes(5 * 784 - 3840)
    (idx / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
    images, _ = open_images(idx, 28, channels=1)
    assert len(images) == 5 and images[0].shape == (28, 28, 1)


def test_malicious_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": Evil()}, f)
    with pytest.raises(ScvaeError, match="refusing to load"):
        open_images(tmp_path, 32)


@pytest.mark.parametrize("model_type", ["vae", "vqvae"])
def test_baselines_train_and_evaluate_through_the_cli(model_type, image_folder, tmp_path, capsys):
    run = tmp_path / model_type
    assert main(["train", "--model", model_type, "--data", str(image_folder), "--out", str(run), "--steps", "3",
                 "--no-progress", *[o for o in TINY if "n_atoms" not in o], "val_ratio=0.25"]) == 0
    assert main(["eval", "--model", str(run), "--data", str(image_folder)]) == 0
    out = capsys.readouterr().out
    assert "LPIPS skipped: needs" in out
    result = json.loads((run / "eval" / "eval.json").read_text())
    assert result["model_type"] == model_type and result["data"]["n_images"] == 12
    key = "active_units" if model_type == "vae" else "perplexity"
    assert key in result["diagnostics"]
    assert result["versions"]["torch"] and "Gaussian window 11" in result["conventions"]["ssim"]
    assert (run / "eval" / "usage_histogram.png").stat().st_size > 1000


def test_compare_writes_one_table_for_all_models(image_folder, tmp_path, capsys):
    out = tmp_path / "cmp"
    overrides = [o for o in TINY if "n_atoms" not in o] + ["val_ratio=0.25"]
    assert main(["compare", "--data", str(image_folder), "--steps", "2", "--out", str(out), "--no-progress",
                 *overrides]) == 0
    summary = json.loads((out / "compare.json").read_text())
    assert set(summary["models"]) == {"scvae", "ae", "vqvae", "vqvae-strong", "fsq", "vae"}
    assert all(r["sec_per_step"] > 0 and r["parameters"] > 0 for r in summary["models"].values())
    assert all(r["bits_per_image"] >= 0 for r in summary["models"].values())
    assert "codebook_usage" in summary["models"]["vqvae"] and "active_frac" in summary["models"]["scvae"]
    assert summary["models"]["fsq"]["codebook_usage"] > 0 and "perplexity" in summary["models"]["vqvae-strong"]
    for name in ("compare.md", "psnr_vs_steps.png", "reconstructions.png"):
        assert (out / name).is_file()
    assert "| scvae |" in capsys.readouterr().out
    weights = (out / "ae/checkpoints/last/model.safetensors").stat().st_mtime_ns
    assert main(["compare", "--data", str(image_folder), "--steps", "2", "--out", str(out), "--no-progress",
                 "--models", "ae", *overrides, "val_every=1", "log_every=2"]) == 0  # a finished run with the same
    assert (out / "ae/checkpoints/last/model.safetensors").stat().st_mtime_ns == weights  # training is reused
    assert main(["compare", "--data", str(image_folder), "--steps", "2", "--out", str(out), "--no-progress",
                 "--models", "ae", "--overwrite", *overrides, "lr=1e-3"]) == 0  # another training is not
    assert (out / "ae/checkpoints/last/model.safetensors").stat().st_mtime_ns != weights


def test_rd_draws_every_family_from_one_sweep(image_folder, tmp_path, monkeypatch, capsys):
    from scvae import rate_distortion as rd

    monkeypatch.setitem(rd.SWEEPS, "scvae", [{"max_active": 2, "balance_step": 0.0}, {"max_active": 33}])
    monkeypatch.setitem(rd.SWEEPS, "fsq", [{"levels": [5, 5]}, {}])  # 3 x 3: one code, 0 bits, in 2 steps
    monkeypatch.setitem(rd.SWEEPS, "ae", [{}, {"rate_weight": 1e-3}])
    monkeypatch.setitem(rd.SWEEPS, "vae", [{}, {"kl_weight": 1e-3}])
    monkeypatch.setattr(rd, "POST_TRAINING_STEPS", (None, 0.5))
    out = tmp_path / "rd"
    overrides = [o for o in TINY if "n_atoms" not in o] + ["val_ratio=0.25"]
    assert main(["rd", "--data", str(image_folder), "--steps", "2", "--out", str(out), "--no-progress",
                 "--families", "scvae,fsq,ae,vae", *overrides]) == 0
    summary = json.loads((out / "rd.json").read_text())
    runs = [(p["family"], p["run"]) for p in summary["points"]]
    assert runs == [("scvae", "scvae-max_active-2-balance_step-0.0"), ("scvae", "scvae"), ("fsq", "fsq-levels-5x5"),
                    ("fsq", "fsq"), ("ae", "ae"), ("ae", "ae"), ("ae-rate", "ae-rate_weight-0.001"),
                    ("vae-kl", "vae"), ("vae", "vae"), ("vae", "vae"), ("vae-kl", "vae-kl_weight-0.001"),
                    ("vae", "vae-kl_weight-0.001"), ("vae", "vae-kl_weight-0.001")]  # preset: compare's folders
    assert all(p["bits_per_image"] >= 0 for p in summary["points"])
    # the KL-weight-1 VAE's means may all round to 0 after 2 steps (posterior collapse): 0 bits is its true rate
    assert all(p["bits_per_image"] > 0 for p in summary["points"] if p["run"] != "vae")
    ae = [p for p in summary["points"] if p["family"] == "ae"]
    assert ae[1]["step"] == 0.5 and ae[1]["setting"] == {"step": 0.5} and ae[0]["bits_per_image"] != ae[1]["bits_per_image"]
    assert [p["step"] for p in summary["points"] if p["family"] == "ae-rate"] == [1.0]
    md = (out / "rd.md").read_text()
    assert "every other family at equal rate, at coded rates" in md and "at its KL (bits-back) rate" in md
    assert (out / "rd.png").stat().st_size > 1000 and "| fsq |" in capsys.readouterr().out


def test_unknown_model_type_is_a_one_line_error(capsys):
    assert main(["compare", "--models", "scvae,gan"]) == 2
    assert "unknown model 'gan'" in capsys.readouterr().err


def test_eval_at_a_larger_crop_size(tiny_run, image_folder, tmp_path, capsys):
    """--size: the fully convolutional model scored on larger centre crops; MS-SSIM joins at >= 161 px."""
    from scvae.cli import main

    out = tmp_path / "eval"
    assert main(["eval", "--model", str(tiny_run), "--data", str(image_folder), "--size", "40", "--out", str(out)]) == 0
    result = json.loads((out / "eval.json").read_text())
    assert result["data"]["crop_size"] == 40 and result["data"]["resolution"] == 16
    assert result["metrics"]["bits_per_image"] > 0 and "40 px crops" in capsys.readouterr().out
    assert main(["eval", "--model", str(tiny_run), "--data", str(image_folder), "--size", "41",
                 "--out", str(tmp_path / "odd")]) == 2
    assert "multiple of 2" in capsys.readouterr().err and not (tmp_path / "odd" / "eval.json").exists()
