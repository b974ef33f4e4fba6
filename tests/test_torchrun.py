"""torchrun with two CPU processes (gloo): the same training as one process with the same global batch.

Each rank draws half of every global batch; DDP averages gradients and the buffers (usage counts, EMA
codebooks, restarts) are reduced or broadcast, so rank 0's weights must equal a one-process run with
twice the per-rank batch. Whole 16 px images without flips make both runs see identical pixels;
``adam_eps=1e-6`` keeps Adam from turning the float noise of near-zero gradients into full-size steps.
"""
import os
import shutil
import subprocess
import sys

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from scvae.cli import main
from scvae.training.checkpoint import load_trainer_state

from .conftest import TINY

pytestmark = pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not installed")

COMMON = [o for o in TINY if not o.startswith("model.n_atoms")] + ["flip=false", "val_ratio=0.25", "adam_eps=1e-6", "val_every=2", "save_every=2"]


@pytest.fixture(autouse=True)
def one_thread():
    """The in-process reference runs with one thread like each rank, so that both sum floats alike and a
    near-tie in a top-k selection cannot flip between them."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small_images(tmp_path_factory):
    import skimage.data

    root = tmp_path_factory.mktemp("torchrun") / "images"
    root.mkdir()
    photo = skimage.data.astronaut()
    for i in range(20):
        Image.fromarray(photo[i * 20:i * 20 + 16, i * 15:i * 15 + 16]).save(root / f"img{i:02d}.png")
    return root


def torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["torchrun", "--standalone", "--nproc_per_node=2", "-m", "scvae", *args],
                          capture_output=True, text=True, env=env, timeout=300)


def _weights(run):
    return load_file(str(run / "checkpoints/last/model.safetensors"))


def _close(a, b, atol=1e-4):
    """Within float tolerance (a wrong global batch moves weights by ~1e-2). Usage averages count selections:
    a near-tie in the top-k can flip with the order of floating-point sums, and one flip moves an atom's
    average by 1 - decay = 0.01, so they get a few flips' worth."""
    return a.keys() == b.keys() and all(
        torch.allclose(a[k].float(), b[k].float(), atol=0.05 if k.endswith("usage_ema") else atol, rtol=2e-3)
        for k in a)


@pytest.mark.parametrize("options", [
    ["--model-type", "scvae", "model.n_atoms=36"],
    ["--model-type", "scvae", "model.n_atoms=36", "model.untied=true", "model.refit=false", "model.n_iter=3"],
    ["--model-type", "scvae", "model.n_atoms=36", "model.learn_dictionary=true", "model.dead_atom_threshold=100"],
    ["--model-type", "vqvae", "model.ema=true", "model.dead_code_threshold=1.0", "model.l2_normalize=true"],
    ["--model-type", "vqvae-strong", "steps=1"], ["--model-type", "rvq", "steps=1"],
    ["--model-type", "fsq"], ["--model-type", "ae"],
], ids=["scvae", "untied", "restarts", "vq-ema-restart", "strong-vq", "rvq", "fsq", "ae"])
def test_two_ranks_equal_one_rank_with_the_same_global_batch(small_images, tmp_path, options, capsys):
    """Every family at its preset defaults, plus SC-VAE's options. The strong VQ and the residual VQ run their
    k-means init and dead-code restarts on the gathered global batch; they are compared after the step that
    inits and restarts (step 1), because later a near-tie between near-identical restarted codes can flip under
    another float summation order, and the restarts then draw other rows (README, *Multi-GPU*)."""
    one, two = tmp_path / "one", tmp_path / "two"
    steps = [] if any(o.startswith("steps=") for o in options) else ["steps=4"]
    assert main(["train", "--data", str(small_images), "--out", str(one), "--no-progress", *COMMON, *options,
                 *steps, "batch_size=8"]) == 0
    result = torchrun("train", "--data", str(small_images), "--out", str(two), "--no-progress", *COMMON, *options,
                      *steps, "batch_size=4")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("done:") == 1 and "nan" not in result.stdout  # rank 0 alone reports
    assert "RuntimeWarning" not in result.stderr and "Traceback" not in result.stderr
    # restarting every atom at every step re-ranks rows by residual norm, and near-equal norms can swap
    # between the two float summation orders: 1e-3 there (a wrong global batch is 1e-2 away)
    assert _close(_weights(one), _weights(two), atol=1e-3 if "model.dead_atom_threshold=100" in options else 1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]  # nothing written beside the runs


@pytest.mark.parametrize("family, steps, lpips", [("ae", 4, False), ("scvae", 1, True)], ids=["gan", "lpips-gan"])
def test_gan_on_two_ranks_equals_one_rank(small_images, tmp_path, lpips_files, family, steps, lpips):
    """The discriminator trains from step 0 under DDP, with global-batch BatchNorm and a globally averaged
    adaptive weight: its weights, and the autoencoder's, equal one process's. With LPIPS the comparison
    stops after one step: from the second on, float noise in the reconstructions flips near-tied max-pool
    winners in VGG, and the LPIPS gradients differ by more than the tolerance (README, *Multi-GPU*)."""
    vgg, lin, _, _ = lpips_files
    options = [*COMMON, f"model.n_atoms=36" if family == "scvae" else "model.z_channels=16", f"steps={steps}",
               "disc_weight=0.5", "disc_start=0", "disc_layers=2", "--model-type", family]
    if lpips:
        options += [f"lpips_vgg={vgg}", f"lpips_lin={lin}", "lpips_weight=1.0"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["train", "--data", str(small_images), "--out", str(one), "--no-progress", *options,
                 "batch_size=8"]) == 0
    result = torchrun("train", "--data", str(small_images), "--out", str(two), "--no-progress", *options,
                      "batch_size=4")
    assert result.returncode == 0, result.stderr[-2000:]
    assert _close(_weights(one), _weights(two))
    discriminators = [load_trainer_state(run / "checkpoints/last")["objective"]["adversary"]["net"] for run in (one, two)]
    assert _close(*discriminators)


def test_vae_trains_under_two_ranks(small_images, tmp_path):
    """The VAE's sampling noise is drawn per rank (rank r > 0 from (seed, step, r)), so it cannot equal one
    process; it must train and report once."""
    result = torchrun("train", "--data", str(small_images), "--out", str(tmp_path / "vae"), "--no-progress",
                      "--model-type", "vae", *COMMON, "steps=2", "batch_size=4")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("done:") == 1 and "nan" not in result.stdout


def test_a_different_global_batch_is_detected(small_images, tmp_path):
    """The comparison above can fail: one process with half the batch ends elsewhere."""
    for name, batch in [("full", "batch_size=8"), ("half", "batch_size=4")]:
        assert main(["train", "--data", str(small_images), "--out", str(tmp_path / name), "--no-progress",
                     *COMMON, "steps=4", batch]) == 0
    assert not _close(_weights(tmp_path / "full"), _weights(tmp_path / "half"))


def test_resume_under_torchrun_equals_resume_in_one_process(small_images, tmp_path):
    """Train 2 steps, then extend to 4 with --resume (the schedule rule of README "Resuming"): under
    torchrun the same as in one process."""
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["train", "--data", str(small_images), "--out", str(one), "--no-progress", *COMMON,
                 "steps=2", "batch_size=8"]) == 0
    assert main(["train", "--out", str(one), "--resume", "--steps", "4", "--no-progress"]) == 0
    first = torchrun("train", "--data", str(small_images), "--out", str(two), "--no-progress", *COMMON,
                     "steps=2", "batch_size=4")
    assert first.returncode == 0, first.stderr[-2000:]
    again = torchrun("train", "--out", str(two), "--resume", "--steps", "4", "--no-progress")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "done: 4 steps" in again.stdout
    assert _close(_weights(one), _weights(two))


def test_python_m_scvae_runs_without_a_runpy_warning():
    for module in ("scvae", "scvae.cli", "scvae.cli.main"):
        result = subprocess.run([sys.executable, "-W", "error", "-m", module, "presets"], capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0 and "small-32" in result.stdout, result.stderr
