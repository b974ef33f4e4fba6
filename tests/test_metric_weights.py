"""The learned metrics of `eval` and `compare`: one VGG LPIPS (training's) and rFID with pytorch-fid's Inception,
both read from local files the tests write in the official key layouts; the Frechet distance against scipy."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from scipy import linalg

from scvae.cli import main
from scvae.data import CropDataset, open_images
from scvae.errors import ScvaeError
from scvae.evaluation.fid import InceptionFeatures, frechet_distance, load_fid_inception
from scvae.evaluation.metrics import to_unit
from scvae.training import load_model

from .conftest import reference_lpips
from .reference.states import INCEPTION_STAGES, inception_input, inception_state, lpips_inputs, summary

# Keys and shapes of pytorch-fid's pt_inception-2015-12-05-6726825d.pth (torchvision's Inception3 names).
OFFICIAL_KEYS = {"Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3), "Conv2d_4a_3x3.bn.running_var": (192,),
                 "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1), "Mixed_5d.branch5x5_2.conv.weight": (64, 48, 5, 5),
                 "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3), "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
                 "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3), "Mixed_7b.branch1x1.bn.bias": (320,),
                 "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1), "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1)}


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """Seeded random weights in pytorch-fid's layout (tests/reference/states.py)."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in InceptionFeatures().state_dict().items() if "num_batches" not in k}
    for key, shape in OFFICIAL_KEYS.items():
        assert tuple(shapes[key]) == shape, key
    path = tmp_path_factory.mktemp("fid") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(inception_state(shapes), path)
    return path


def _references() -> dict[str, torch.Tensor]:
    """Outputs of pytorch-fid's FID Inception and richzhang's LPIPS on the same seeded weights and inputs,
    computed once by tests/reference/make_metric_references.py with the official code."""
    return load_file(str(Path(__file__).parent / "reference" / "metric_references.safetensors"))


def _close(ours: torch.Tensor, reference: torch.Tensor) -> bool:
    return torch.allclose(ours, reference, rtol=1e-5, atol=1e-5 * float(reference.abs().max()))  # float sums


def test_every_stage_of_the_fid_inception_matches_pytorch_fid(inception_file):
    net, references = load_fid_inception(inception_file), _references()
    stages = {}
    for name in INCEPTION_STAGES:
        net.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: stages.__setitem__(name, o))
    pool = net(inception_input())
    assert _close(pool, references["inception.pool"])
    for name in INCEPTION_STAGES:
        for part, value in summary(stages[name]).items():
            assert _close(value, references[f"inception.{name}.{part}"]), \
                f"{name} {part}: {(value - references[f'inception.{name}.{part}']).abs().max()}"


def test_every_tap_of_lpips_matches_richzhangs_lpips(lpips_files):
    from scvae.evaluation.lpips import LPIPS

    vgg_path, lin_path, _, _ = lpips_files
    net, references = LPIPS(vgg_path, lin_path), _references()
    x, y = lpips_inputs()
    assert _close(net(x, y), references["lpips.distance"])
    for i, tap in enumerate(net._activations(y)):
        for part, value in summary(tap).items():
            assert _close(value, references[f"lpips.tap{i}.{part}"]), f"tap {i} {part}"


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    h = linalg.hadamard(8)[:, 1:].astype(float)  # 7 orthogonal zero-mean columns: diagonal sample covariances
    sa, sb = np.arange(1.0, 8.0), np.linspace(0.5, 3.0, 7)
    mu_a, mu_b = np.linspace(0, 1, 7), np.linspace(1, -1, 7)
    a, b = h * sa + mu_a, h * sb + mu_b
    ca, cb = sa ** 2 * 8 / 7, sb ** 2 * 8 / 7
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum(ca + cb - 2 * np.sqrt(ca * cb))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)


def test_frechet_distance_matches_the_symmetric_scipy_form(rng):
    a, b = rng.normal(size=(200, 16)), rng.normal(size=(150, 16)) @ rng.normal(size=(16, 16)) + 0.3
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    half = linalg.sqrtm(ca).real
    expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(ca + cb - 2 * linalg.sqrtm(half @ cb @ half).real)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ScvaeError, match="at least 2 images"):
        frechet_distance(a[:1], b)


def test_a_frechet_distance_with_a_large_imaginary_part_is_refused(rng, monkeypatch):
    """pytorch-fid's rule: an imaginary part above 1e-3 in sqrtm's diagonal means the result is no distance."""
    import scvae.evaluation.fid as fid

    a, b = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    real, sqrtm = frechet_distance(a, b), linalg.sqrtm
    monkeypatch.setattr(fid.linalg, "sqrtm", lambda m: sqrtm(m) + 1e-5j)  # rounding noise: kept
    assert frechet_distance(a, b) == pytest.approx(real)
    monkeypatch.setattr(fid.linalg, "sqrtm", lambda m: sqrtm(m) + 0.1j)
    with pytest.raises(ScvaeError, match="not real"):
        frechet_distance(a, b)


def test_fid_inception_loads_the_official_layout_and_gives_2048_features(inception_file):
    net = load_fid_inception(inception_file)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    f = net(x)
    assert f.shape == (2, 2048) and torch.isfinite(f).all() and not torch.equal(f[0], f[1])
    assert not any(p.requires_grad for p in net.parameters())


def test_wrong_inception_files_are_refused_in_one_line(inception_file, tmp_path):
    state = torch.load(inception_file, weights_only=True)
    del state["Mixed_7c.branch_pool.conv.weight"]
    torch.save(state, tmp_path / "cut.pth")
    with pytest.raises(ScvaeError, match="do not match pytorch-fid"):
        load_fid_inception(tmp_path / "cut.pth")
    with pytest.raises(ScvaeError, match="not found"):
        load_fid_inception(tmp_path / "missing.pth")


def test_eval_reports_lpips_and_rfid_from_the_files_given(tiny_run, lpips_files, inception_file, tmp_path, capsys):
    vgg_path, lin_path, vgg, lin = lpips_files
    data = tiny_run.parent / "images"
    assert main(["eval", "--model", str(tiny_run), "--data", str(data), "--out", str(tmp_path / "ev"),
                 "--lpips-vgg", str(vgg_path), "--lpips-lin", str(lin_path),
                 "--inception-weights", str(inception_file)]) == 0
    out = capsys.readouterr().out
    assert "LPIPS skipped" not in out and "rFID skipped" not in out
    metrics = json.loads((tmp_path / "ev" / "eval.json").read_text())["metrics"]
    model = load_model(tiny_run)
    images, names = open_images(data, model.resolution, model.in_channels)
    x = torch.cat([b for _, b in CropDataset(images, model.resolution, names, random_crop=False).eval_batches(64)])
    with torch.no_grad():
        y = to_unit(model(x).reconstruction) * 2 - 1
    expected = reference_lpips(to_unit(x) * 2 - 1, y, vgg, lin).mean()
    assert metrics["lpips"] == pytest.approx(float(expected), rel=1e-4)
    assert np.isfinite(metrics["rfid"]) and metrics["rfid"] > 0


def test_eval_with_a_missing_weights_file_exits_2_and_writes_nothing(tiny_run, tmp_path, capsys):
    out = tmp_path / "ev"
    code = main(["eval", "--model", str(tiny_run), "--data", str(tiny_run.parent / "images"), "--out", str(out),
                 "--inception-weights", str(tmp_path / "nope.pth")])
    assert code == 2 and "nope.pth" in capsys.readouterr().err and not out.exists()
