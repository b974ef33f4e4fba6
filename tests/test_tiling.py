"""Whole images through crop-sized tiles: covering, blending weights that sum to one, and the model path."""
import pytest
import torch

from scvae.models import SCVAE
from scvae.models.tiling import ramp, reconstruct_tiled, tile_starts


@pytest.mark.parametrize("length, tile, stride", [(100, 32, 24), (32, 32, 24), (20, 32, 24), (57, 16, 12)])
def test_tiles_cover_every_pixel_and_end_flush(length, tile, stride):
    starts = tile_starts(length, tile, stride)
    covered = torch.zeros(max(length, tile), dtype=torch.bool)
    for s in starts:
        covered[s:s + tile] = True
    assert covered[:length].all() and starts[0] == 0 and starts[-1] == max(0, length - tile)
    assert all(b - a <= stride for a, b in zip(starts, starts[1:]))


def test_identity_survives_tiling_exactly_and_offsets_blend_smoothly():
    x = torch.randn(2, 3, 45, 70, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(reconstruct_tiled(lambda t: t, x, 16, 4), x, atol=1e-6)
    # each tile off by its own constant: the blend lies between the constants, changing gradually
    counter = iter(range(1000))
    shifted = reconstruct_tiled(lambda t: t + torch.tensor([float(next(counter)) for _ in range(len(t))])
                                .view(-1, 1, 1, 1), torch.zeros(1, 1, 40, 40), 16, 4)
    step = shifted.diff(dim=-1).abs().max()
    assert shifted.min() >= 0 and step <= 1.0  # neighbouring tiles differ by 1: ramps, no jumps
    assert ramp(16, 4).min() > 0 and ramp(16, 4).max() == 1


def test_reconstruct_any_size_tiles_only_images_larger_than_the_training_size():
    model = SCVAE.from_preset("tiny").eval()
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.equal(model.reconstruct_any_size(x), model.reconstruct(x))
    big = torch.rand(1, 3, 40, 52) * 2 - 1
    out = model.reconstruct_any_size(big)
    assert out.shape == big.shape and not out.requires_grad
    corner = model.reconstruct(big[..., :16, :16])  # the only tile over the first 12 x 12 pixels
    assert torch.allclose(out[..., :12, :12], corner[..., :12, :12], atol=1e-5)
