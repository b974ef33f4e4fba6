"""The rate model of sparse codes (support + quantised values), against its definition, and an SC-VAE trained
for rate: the learned step, the support's gradient, the loss normalised like the AE's."""
import math

import pytest
import scipy.stats
import torch

from scvae import SCVAE
from scvae.sparse import SparseCodingBottleneck
from scvae.sparse.rate import SparseCodeRate, bernoulli_bits, logistic_bin_bits

SMALL = dict(resolution=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, mid_attn=False, z_channels=16)


def test_logistic_bin_bits_is_the_mass_of_the_unit_bin():
    values = torch.tensor([-3.0, -1.0, 0.0, 1.0, 2.0, 7.0])
    loc, log_scale = torch.tensor(0.4), torch.tensor(math.log(1.7))
    dist = scipy.stats.logistic(loc=0.4, scale=1.7)
    expected = [-math.log2(dist.cdf(v + 0.5) - dist.cdf(v - 0.5)) for v in values.tolist()]
    assert logistic_bin_bits(values, loc, log_scale).tolist() == pytest.approx(expected, rel=1e-5)


def test_bernoulli_bits():
    bits = bernoulli_bits(torch.tensor([1.0, 0.0]), torch.tensor([0.2, 0.2]))
    assert bits.tolist() == pytest.approx([-math.log2(0.2), -math.log2(0.8)], rel=1e-6)


def test_eval_bits_count_the_support_and_the_rounded_values_of_each_row():
    torch.manual_seed(0)
    rate = SparseCodeRate(4).eval()
    with torch.no_grad():
        rate.support_frequency.copy_(torch.tensor([0.1, 0.3, 0.5, 0.8]))
        rate.value_loc.copy_(torch.tensor([0.5, -0.5, 0.0, 1.0]))
        rate.value_log_scale.copy_(torch.tensor([0.0, 0.3, -0.2, 0.1]))
    codes = torch.tensor([[0.0, 0.9, 0.0, -0.4], [1.3, 0.0, 0.1, 0.0]])  # 0.1 rounds to 0: out of the support
    step = 0.5
    bits = rate(codes, step)
    p = rate.support_probability().tolist()
    expected = []
    for row in codes.tolist():
        total = 0.0
        for k, a in enumerate(row):
            n = round(a / step)
            if n == 0:
                total -= math.log2(1 - p[k])
                continue
            dist = scipy.stats.logistic(loc=rate.value_loc[k].item(), scale=math.exp(rate.value_log_scale[k].item()))
            total -= math.log2(p[k]) + math.log2(dist.cdf(n + 0.5) - dist.cdf(n - 0.5))
        expected.append(total)
    assert bits.tolist() == pytest.approx(expected, rel=1e-5)


def test_the_support_probabilities_track_the_activity_frequencies():
    rate = SparseCodeRate(3, decay=0.5)
    codes = torch.tensor([[1.0, 0.0, 0.0], [2.0, 3.0, 0.0]])  # frequencies 1, 1/2, 0
    for _ in range(30):
        rate(codes, 1.0)
    assert rate.support_frequency.tolist() == pytest.approx([1.0, 0.5, 0.0], abs=1e-6)
    assert rate.support_probability().tolist() == pytest.approx([1 - 1e-4, 0.5, 1e-4])
    rate.eval()(codes, 1.0)  # evaluation leaves them alone
    assert rate.support_frequency.tolist() == pytest.approx([1.0, 0.5, 0.0], abs=1e-6)


def test_the_support_counts_hard_forward_and_passes_a_soft_gradient_to_the_preactivation():
    rate = SparseCodeRate(3)
    pre = torch.tensor([[0.05, 0.5, 0.31]], requires_grad=True)
    codes = torch.tensor([[0.0, 0.4, 0.0]])  # the third atom was dropped by the cap although above threshold
    active = rate.soft_support(codes, pre, torch.full((3,), 0.3))
    assert active.tolist() == [[0.0, 1.0, 0.0]]
    active.sum().backward()
    assert (pre.grad > 0).all()  # a larger preactivation makes every atom more active


def test_a_rate_trained_bottleneck_learns_its_step_and_reports_bits():
    torch.manual_seed(0)
    sc = SparseCodingBottleneck(16, 32, n_iter=4, lam=0.3, max_active=6, refit=True, quantize_step=0.5,
                                rate_weight=0.1)
    z = torch.randn(2, 16, 3, 3, requires_grad=True)
    out = sc(z)
    assert out.bits.shape == (18,) and out.losses["bits"] == pytest.approx(float(out.bits.detach().mean()))
    out.loss.backward()
    assert sc.log_step.grad is not None and sc.log_step.grad != 0
    assert z.grad.abs().sum() > 0
    assert sc.quantize_step == pytest.approx(0.5)
    with pytest.raises(ValueError, match="quantize_step"):
        SparseCodingBottleneck(16, 32, max_active=6, rate_weight=0.1)


def test_scvae_rate_loss_is_weighted_per_pixel_like_the_ae():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    model = SCVAE(**SMALL, n_atoms=32, max_active=6, quantize_step=1.0, rate_weight=0.01, balance_step=0.0)
    out = model(x)
    positions = 8 * 8  # ch_mult (1, 2): factor 2
    bits_per_image = out.losses["bits"] * positions
    expected = out.losses["recon"] + 0.01 * out.losses["latent"] + 0.01 * bits_per_image / x[0].numel()
    assert float(out.loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    assert model.symbol_step() == pytest.approx(1.0)


def test_packed_codes_round_trip_and_are_smaller(tmp_path):
    from safetensors.torch import load_file

    from scvae.sparse import load_codes, pack_codes, save_codes, unpack_codes

    torch.manual_seed(0)
    codes = torch.randn(3, 256, 4, 5)
    codes[codes.abs() < 1.9] = 0  # about 6 % active
    support, values = pack_codes(codes)
    assert support.dtype == torch.int16 and support.shape[1] == int((codes != 0).sum(1).max())
    assert torch.equal(unpack_codes(support, values, 256), codes)
    assert save_codes(str(tmp_path / "c.safetensors"), codes, {}) == "packed"
    assert torch.equal(load_codes(str(tmp_path / "c.safetensors")), codes)
    assert set(load_file(str(tmp_path / "c.safetensors"))) == {"support", "values"}
    whole = [codes[:1], codes[1:, :, :3]]
    save_codes(str(tmp_path / "w.safetensors"), whole, {})
    assert all(torch.equal(a, b) for a, b in zip(load_codes(str(tmp_path / "w.safetensors")), whole))
    indices = torch.randint(0, 9, (2, 4, 4))  # a VQ's indices stay dense
    assert save_codes(str(tmp_path / "i.safetensors"), indices, {}) == "dense"
    assert torch.equal(load_codes(str(tmp_path / "i.safetensors")), indices)


def test_a_rate_trained_scvae_saves_and_loads_its_step_and_frequencies(tmp_path):
    torch.manual_seed(0)
    model = SCVAE(**SMALL, n_atoms=32, max_active=6, quantize_step=1.0, rate_weight=0.01, balance_step=0.0)
    model.train()(torch.rand(4, 3, 16, 16) * 2 - 1)  # moves the frequencies
    with torch.no_grad():
        model.bottleneck.log_step.fill_(-0.5)
    model.save_pretrained(tmp_path / "m")
    loaded = SCVAE.from_pretrained(tmp_path / "m")
    assert loaded.symbol_step() == pytest.approx(float(torch.tensor(-0.5).exp()))
    frequencies = model.bottleneck.rate.support_frequency
    assert torch.equal(loaded.bottleneck.rate.support_frequency, frequencies) and not torch.all(frequencies == 0.1)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.equal(loaded.encode(x).codes, model.eval().encode(x).codes)
