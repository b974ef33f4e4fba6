"""Quantisation-aware sparse codes: the grid, the kept support, the straight-through gradient, and the rate
estimate of a model whose codes are already on a grid."""
import pytest
import torch

from scvae import SCVAE
from scvae.data import CropDataset
from scvae.evaluation import estimate_rate
from scvae.sparse import SparseCodingBottleneck
from scvae.sparse.quantize import quantize_codes

SMALL = dict(resolution=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, mid_attn=False, z_channels=16)


def test_values_round_to_the_grid_and_the_support_is_kept():
    codes = torch.tensor([0.0, 0.1, -0.1, 0.74, -0.76, 1.26, 0.0, -2.0])
    q = quantize_codes(codes, 0.5)
    assert q.tolist() == [0.0, 0.5, -0.5, 0.5, -1.0, 1.5, 0.0, -2.0]
    assert torch.equal(q != 0, codes != 0)
    # without keep_support a small value may vanish (what the AE's dense latent uses)
    assert quantize_codes(codes, 0.5, keep_support=False)[1] == 0


def test_the_gradient_is_straight_through():
    codes = torch.tensor([0.3, -1.2, 0.0, 2.6], requires_grad=True)
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0])
    (quantize_codes(codes, 1.0) * weights).sum().backward()
    assert torch.equal(codes.grad, weights)


def test_the_bottleneck_quantizes_in_training_and_at_inference():
    torch.manual_seed(0)
    step = 0.25
    sc = SparseCodingBottleneck(16, 36, n_iter=4, max_active=4, refit=True, quantize_step=step)
    z = torch.randn(2, 16, 3, 3, requires_grad=True)
    out = sc(z)
    nonzero = out.codes[out.codes != 0]
    assert torch.equal(nonzero / step, torch.round(nonzero / step))
    assert (out.codes != 0).sum(1).max() == 4
    assert torch.allclose(out.latent_hat, sc.synthesize(out.codes))
    out.latent_hat.square().sum().backward()
    assert z.grad.abs().sum() > 0
    sc.eval()
    assert torch.equal(sc.encode(z), out.codes.detach())
    unquantized = SparseCodingBottleneck(16, 36, n_iter=4, max_active=4, refit=True).eval()
    assert not torch.equal(unquantized.encode(z), out.codes.detach())
    with pytest.raises(ValueError, match="quantize_step"):
        SparseCodingBottleneck(16, 36, quantize_step=-0.1)


def test_a_quantization_aware_model_is_rated_at_least_at_its_own_step():
    """Codes already on the step grid lose nothing at that step, so the rate's step is no finer."""
    torch.manual_seed(0)
    import skimage.data

    dataset = CropDataset([skimage.data.coffee()[:64, i * 40:i * 40 + 64] for i in range(4)], 16, random_crop=False)
    step = 0.5
    model = SCVAE(**SMALL, n_atoms=36, max_active=4, quantize_step=step)
    rate = estimate_rate(model, dataset)
    assert rate.step >= step and rate.psnr >= rate.psnr_unquantised - 0.1


def test_nearest_codes_of_a_quantization_aware_model_are_on_its_grid():
    """Generation and interpolation project vectors with ``nearest_codes``: the decoder was trained on grid
    values, so the projection puts the kept values there too."""
    torch.manual_seed(0)
    step = 0.5
    model = SCVAE(**SMALL, n_atoms=36, max_active=4, quantize_step=step).eval()
    codes = model.nearest_codes(torch.randn(2, 36, 3, 3))
    assert (codes != 0).sum(1).max() == 4
    nonzero = codes[codes != 0]
    assert torch.equal(nonzero / step, torch.round(nonzero / step))
