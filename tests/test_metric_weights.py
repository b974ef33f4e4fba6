"""The learned metrics of `eval` and `compare`: one VGG LPIPS (training's) and rFID with pytorch-fid's Inception,
both read from local files the tests write in the official key layouts; the Frechet distance against scipy."""
import json

import numpy as np
import pytest
import torch
from scipy import linalg

from scvae.cli import main
from scvae.data import CropDataset, open_images
from scvae.errors import ScvaeError
from scvae.evaluation.fid import InceptionFeatures, frechet_distance, load_fid_inception
from scvae.evaluation.metrics import to_unit
from scvae.training import load_model

from .conftest import reference_lpips

# Keys and shapes of pytorch-fid's pt_inception-2015-12-05-6726825d.pth (torchvision's Inception3 names).
OFFICIAL_KEYS = {"Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3), "Conv2d_4a_3x3.bn.running_var": (192,),
                 "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1), "Mixed_5d.branch5x5_2.conv.weight": (64, 48, 5, 5),
                 "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3), "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
                 "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3), "Mixed_7b.branch1x1.bn.bias": (320,),
                 "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1), "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1)}


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """Random weights in pytorch-fid's layout: every conv and BatchNorm tensor plus the 1008-way fc, no
    num_batches_tracked (the official file predates it)."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in InceptionFeatures().state_dict().items() if "num_batches" not in k}
    for key, shape in OFFICIAL_KEYS.items():
        assert tuple(shapes[key]) == shape, key
    g = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("conv.weight"):
            state[key] = torch.randn(shape, generator=g) * (2 / shape[1:].numel()) ** 0.5
        elif key.endswith(("running_var", "bn.weight")):
            state[key] = 1 + 0.1 * torch.rand(shape, generator=g)
        else:
            state[key] = 0.01 * torch.randn(shape, generator=g)
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    path = tmp_path_factory.mktemp("fid") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, path)
    return path


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


def test_fid_inception_loads_the_official_layout_and_gives_2048_features(inception_file):
    net = load_fid_inception(inception_file)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    f = net(x)
    assert f.shape == (2, 2048) and torch.isfinite(f).all() and not torch.equal(f[0], f[1])
    assert torch.equal(net(x), f) and not any(p.requires_grad for p in net.parameters())


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
