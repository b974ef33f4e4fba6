"""The stage-1 objective: LPIPS (VGG16) loaded from local files in the official key layouts, the PatchGAN
with hinge loss and adaptive weight, both optimizers checkpointed, and bf16 training on CPU."""
import pytest
import torch
from safetensors.torch import load_file

from scvae.cli import main
from scvae.errors import ScvaeError
from scvae.training.adversarial import adaptive_weight, hinge_d_loss
from scvae.training.checkpoint import load_trainer_state
from scvae.evaluation.lpips import LPIPS

from .conftest import TINY, interrupted_then_resumed, reference_lpips

def test_lpips_matches_the_formula_and_is_a_distance(lpips_files):
    vgg_path, lin_path, vgg, lin = lpips_files
    lpips = LPIPS(vgg_path, lin_path)
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    assert torch.allclose(lpips(x, y), reference_lpips(x, y, vgg, lin), rtol=1e-4, atol=1e-6)
    assert torch.all(lpips(x, x) == 0) and torch.all(lpips(x, y) > 0)
    y.requires_grad_(True)
    lpips(x, y).sum().backward()
    assert y.grad.abs().sum() > 0 and all(p.grad is None for p in lpips.parameters())


def test_lpips_weights_errors_name_the_file(lpips_files, tmp_path):
    vgg_path, lin_path, _, lin = lpips_files
    with pytest.raises(ScvaeError, match="not found"):
        LPIPS(tmp_path / "missing.pth", lin_path)
    torch.save({k.replace("lin", "layer"): v for k, v in lin.items()}, tmp_path / "foreign.pth")
    with pytest.raises(ScvaeError, match="do not match"):
        LPIPS(vgg_path, tmp_path / "foreign.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ScvaeError, match="junk.pth: cannot read"):
        LPIPS(vgg_path, tmp_path / "junk.pth")


def test_hinge_loss_and_adaptive_weight():
    assert float(hinge_d_loss(torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0]))) == pytest.approx(0.5 * (0.25 + 0.5))
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    nll, g_loss = (3 * w).sum(), (w ** 2).sum()  # gradients (3, 3) and (2, 4)
    expected = (18 ** 0.5) / (20 ** 0.5 + 1e-4)
    assert float(adaptive_weight(nll, g_loss, w)) == pytest.approx(expected, rel=1e-6)


def _train(data, out, *extra):
    return main(["train", "--data", str(data), "--out", str(out), "--no-progress", *TINY, "val_ratio=0.25", *extra])


def test_lpips_and_gan_training_updates_the_discriminator_and_resumes_exactly(image_folder, tmp_path, lpips_files,
                                                                             monkeypatch):
    vgg_path, lin_path, _, _ = lpips_files
    objective = ["lpips_weight=1.0", f"lpips_vgg={vgg_path}", f"lpips_lin={lin_path}", "disc_weight=0.5",
                 "disc_start=1", "disc_layers=1", "steps=4"]
    assert _train(image_folder, tmp_path / "straight", *objective) == 0
    state = load_trainer_state(tmp_path / "straight/checkpoints/last")["objective"]["adversary"]
    assert state["optimizer"]["state"]  # the discriminator's Adam has taken steps
    metrics = (tmp_path / "straight/metrics.jsonl").read_text()
    assert '"d_loss"' in metrics and '"lpips"' in metrics and '"d_weight"' in metrics
    interrupted_then_resumed(monkeypatch, lambda out: _train(image_folder, out, *objective), tmp_path / "resumed", 3)
    a = load_file(str(tmp_path / "straight/checkpoints/last/model.safetensors"))
    b = load_file(str(tmp_path / "resumed/checkpoints/last/model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    da = load_trainer_state(tmp_path / "straight/checkpoints/last")["objective"]["adversary"]["net"]
    db = load_trainer_state(tmp_path / "resumed/checkpoints/last")["objective"]["adversary"]["net"]
    assert all(torch.equal(da[k], db[k]) for k in da)


def test_vicreg_terms_match_the_published_formulas():
    from scvae.training.invariance import vicreg_terms

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 8, generator=g) * 2, torch.randn(64, 8, generator=g) * 0.5
    terms = vicreg_terms(a, b)

    def reference(x):  # VICReg's std_loss and cov_loss of one branch, written out
        x = x.double() - x.double().mean(0)
        std = torch.sqrt(x.var(0) + 1e-4)
        cov = (x.T @ x) / (len(x) - 1)
        off = cov - torch.diag(torch.diagonal(cov))
        return torch.relu(1 - std).mean(), off.pow(2).sum() / x.shape[1]

    (va, ca), (vb, cb) = reference(a), reference(b)
    assert float(terms["invariance"]) == pytest.approx(float(((a - b) ** 2).mean()), rel=1e-6)
    assert float(terms["variance"]) == pytest.approx(float(va + vb) / 2, rel=1e-5)
    assert float(terms["covariance"]) == pytest.approx(float(ca + cb) / 2, rel=1e-5)
    collapsed = vicreg_terms(torch.ones(16, 4), torch.ones(16, 4))
    assert float(collapsed["invariance"]) == 0 and float(collapsed["variance"]) == pytest.approx(0.99, abs=1e-3)


@pytest.mark.parametrize("views", ["replace", "extra"])
def test_invariance_term_trains_its_projector_and_resumes_exactly(image_folder, tmp_path, monkeypatch, views):
    """Second views (half of each batch, or encoded in addition); the projector's Adam is checkpointed with
    the objective."""
    from scvae.training.objective import Objective

    options = ["invariance_weight=0.5", f"invariance_views={views}", "steps=4"]
    seen, loss = [], Objective.loss

    def spy(self, step, x, output, model, view_latent=None):  # what the trainer hands the term, per micro-batch
        seen.append((len(x), None if view_latent is None else len(view_latent)))
        return loss(self, step, x, output, model, view_latent)

    with monkeypatch.context() as patch:
        patch.setattr(Objective, "loss", spy)
        assert _train(image_folder, tmp_path / "straight", *options) == 0
    # replace: the 4 reconstructed images hold 2 views; extra: all 4 are plain, and 2 views come on top
    assert set(seen) == {(4, None) if views == "replace" else (4, 2)}
    state = load_trainer_state(tmp_path / "straight/checkpoints/last")["objective"]["invariance"]
    assert state["optimizer"]["state"]  # the projector's Adam has taken steps
    assert '"vicreg_variance"' in (tmp_path / "straight/metrics.jsonl").read_text()
    interrupted_then_resumed(monkeypatch, lambda out: _train(image_folder, out, *options), tmp_path / "resumed", 3)
    a = load_file(str(tmp_path / "straight/checkpoints/last/model.safetensors"))
    b = load_file(str(tmp_path / "resumed/checkpoints/last/model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    pa, pb = (load_trainer_state(tmp_path / f"{r}/checkpoints/last")["objective"]["invariance"]["projector"]
              for r in ("straight", "resumed"))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_extra_views_pair_with_the_first_half_of_the_batch():
    """invariance_views=extra: the term pairs the first half of the batch's latents with the views' latents,
    so views identical to their images have a zero invariance term."""
    from types import SimpleNamespace

    from scvae.config import TrainConfig
    from scvae.training.objective import Objective

    objective = Objective(TrainConfig(invariance_weight=1.0, invariance_views="extra"), 3, 16, torch.device("cpu"),
                          latent_dim=4)
    latent = torch.randn(6, 4, 2, 2, generator=torch.Generator().manual_seed(0))
    output = SimpleNamespace(loss=torch.zeros(()), latent=latent)
    _, same = objective.loss(0, latent, output, None, view_latent=latent[:3].clone())
    _, other = objective.loss(0, latent, output, None, view_latent=latent[3:].clone())
    assert float(same["vicreg_invariance"]) == 0 and float(other["vicreg_invariance"]) > 0


@pytest.mark.parametrize("value", ["invariance_views=both", "invariance_weight=-1",
                                   "invariance_weight=1 batch_size=7", "lpips_weight=1", "disc_weight=-1",
                                   "disc_lr=abc", "disc_start=-2", "disc_weight=1 disc_layers=3"])
def test_objective_settings_are_checked_before_anything_is_written(image_folder, tmp_path, capsys, value):
    assert _train(image_folder, tmp_path / "run", "steps=1", *value.split()) == 2
    err = capsys.readouterr().err
    assert value.split()[-1].split("=")[0] in err and err.count("\n") == 1 and not (tmp_path / "run").exists()


@pytest.mark.parametrize("model_type", ["scvae", "vqvae-strong", "fsq", "vae"])
def test_bf16_autocast_trains_end_to_end_on_cpu(image_folder, tmp_path, model_type):
    options = [o for o in TINY if model_type == "scvae" or not o.startswith("model.n_atoms")]
    assert main(["train", "--data", str(image_folder), "--out", str(tmp_path / "run"), "--no-progress",
                 "--model-type", model_type, *options, "val_ratio=0.25", "steps=2", "precision=bf16"]) == 0
    weights = load_file(str(tmp_path / "run/checkpoints/last/model.safetensors"))
    assert all(torch.isfinite(v.float()).all() for v in weights.values())


def test_lista_runs_in_float32_under_bf16_autocast():
    from scvae.models import SCVAE

    model = SCVAE(resolution=16, ch=8, ch_mult=[1, 2], z_channels=16, n_atoms=36)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.rand(2, 3, 16, 16) * 2 - 1)
    assert out.codes.dtype == torch.float32 and torch.isfinite(out.loss)
