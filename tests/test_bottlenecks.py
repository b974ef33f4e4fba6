"""Every bottleneck alone: one output type, codes that synthesise to what the decoder sees, symbols that
map back to the codes, and every model built as encoder -> bottleneck -> decoder."""
import pytest
import torch

from scvae.bottlenecks import (Bottleneck, BottleneckOutput, FSQBottleneck, GaussianBottleneck, IdentityBottleneck,
                               ResidualVQBottleneck, StrongVQBottleneck, VQBottleneck)
from scvae.models import MODEL_REGISTRY
from scvae.sparse import SparseCodingBottleneck

from .tiny import TINY_BACKBONE

D = 16
BOTTLENECKS = {
    "sparse": lambda: SparseCodingBottleneck(D, 36, max_active=4, quantize_step=0.5),
    "vq": lambda: VQBottleneck(32, D, ema=True, dead_code_threshold=0.5),
    "strong-vq": lambda: StrongVQBottleneck(D, 32, codebook_dim=4),
    "fsq": lambda: FSQBottleneck(D, [5, 4, 3]),
    "rvq": lambda: ResidualVQBottleneck(D, 32, 3),
    "identity": lambda: IdentityBottleneck(D),
    "identity-rate": lambda: IdentityBottleneck(D, rate=True),
}


@pytest.mark.parametrize("name", sorted(BOTTLENECKS))
def test_a_bottleneck_codes_what_its_decoder_sees_and_its_symbols_map_back(name):
    torch.manual_seed(0)
    bottleneck = BOTTLENECKS[name]()
    assert isinstance(bottleneck, Bottleneck)
    z = torch.randn(4, D, 5, 6, requires_grad=True)
    out = bottleneck.train()(z)  # initialises codebooks
    assert isinstance(out, BottleneckOutput) and out.latent_hat.shape == z.shape and out.loss.dim() == 0
    (out.latent_hat.square().mean() + out.loss).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0  # the encoder gets a gradient through it
    bottleneck.eval()
    with torch.no_grad():
        out = bottleneck(z)
        codes = bottleneck.encode(z)
        assert torch.equal(codes, out.codes)
        assert torch.allclose(bottleneck.synthesize(codes), out.latent_hat, atol=1e-5)
        if name not in ("strong-vq", "fsq", "rvq"):  # those look up in a learned projection of the vectors
            assert torch.equal(bottleneck.nearest_codes(bottleneck.code_vectors(codes)), codes)
        step = 0.5 if codes.is_floating_point() else None
        symbols = bottleneck.to_symbols(codes, step)
        assert symbols.dtype == torch.int64 and symbols.dim() == 4 and symbols.shape[-2:] == (5, 6)
        assert torch.allclose(bottleneck.from_symbols(symbols, step).float(), codes.float(), atol=0.25 + 1e-6)


def test_the_gaussian_bottleneck_samples_in_training_and_gives_the_mean_and_its_kl_otherwise():
    torch.manual_seed(0)
    h = torch.randn(3, 2 * D, 4, 4)
    bottleneck = GaussianBottleneck(free_bits=0.0)
    mean, logvar = h.chunk(2, dim=1)
    kl = 0.5 * (mean.square() + logvar.exp() - 1 - logvar)
    out = bottleneck.eval()(h)
    assert torch.equal(out.latent_hat, mean) and torch.equal(bottleneck.encode(h), mean)
    assert torch.allclose(out.loss, kl.mean(dim=(0, 2, 3)).sum())
    assert torch.allclose(bottleneck.bits(h), kl.flatten(1).sum(1).double() / torch.log(torch.tensor(2.0)).double())
    assert not torch.equal(bottleneck.train()(h).latent_hat, mean)
    floored = GaussianBottleneck(free_bits=10.0).eval()(h)
    assert torch.allclose(floored.loss, torch.tensor(10.0 * D))


@pytest.mark.parametrize("model_type", sorted(MODEL_REGISTRY))
def test_every_model_is_encoder_bottleneck_decoder(model_type):
    model = MODEL_REGISTRY[model_type](**TINY_BACKBONE)
    assert isinstance(model.bottleneck, Bottleneck)
    assert model.coded_channel == model.bottleneck.coded_channel
