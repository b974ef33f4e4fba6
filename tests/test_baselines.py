"""The strong baselines (AE ceiling, strong VQ-VAE, FSQ), the rate estimate, dead-atom restarts, and the
rule that ``SCVAE()`` is the recommended preset."""
import inspect
import math

import pytest
import torch

from scvae import SCVAE
from scvae.data import CropDataset
from scvae.evaluation import entropy_bits, estimate_rate
from scvae.models import AE, FSQVAE, MODEL_REGISTRY, ResidualVQVAE, StrongVQVAE
from scvae.presets import model_settings
from scvae.sparse import LISTA, dct_dictionary

from .tiny import TINY_BACKBONE

SMALL = TINY_BACKBONE


@pytest.mark.parametrize("model_type", sorted(MODEL_REGISTRY))
def test_encode_and_decode_return_output_dataclasses_or_tuples(model_type):
    """diffusers' convention: EncoderOutput / DecoderOutput by default, a tuple with return_dict=False."""
    from scvae.models import DecoderOutput, EncoderOutput

    torch.manual_seed(0)
    extra = dict(n_atoms=36, max_active=6) if model_type == "scvae" else {}
    model = MODEL_REGISTRY[model_type](**SMALL, **extra).eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    encoded = model.encode(x)
    assert isinstance(encoded, EncoderOutput) and encoded[0] is encoded.codes
    (codes,) = model.encode(x, return_dict=False)
    assert torch.equal(codes, encoded.codes) and not codes.requires_grad  # eval mode: no graph kept
    decoded = model.decode(codes)
    assert isinstance(decoded, DecoderOutput) and decoded.sample.shape == x.shape
    assert torch.equal(model.decode(codes, return_dict=False)[0], decoded.sample)
    assert torch.equal(model.reconstruct(x), decoded.sample.clamp(-1, 1))
    assert model.encode_any_size(x[..., :15, :13]).codes.shape[-2:] == (8, 7)  # ceil(H / f), ceil(W / f)


@pytest.mark.parametrize("model_type", sorted(MODEL_REGISTRY))
def test_latent_is_the_forwards_latent_without_its_side_effects(model_type):
    """model.latent(x), what the probe's features and the invariance views read, is the latent the forward
    reports, and computing it in training mode updates no codebook, usage count or other buffer."""
    torch.manual_seed(0)
    extra = dict(n_atoms=36, max_active=6) if model_type == "scvae" else {}
    model = MODEL_REGISTRY[model_type](**SMALL, **extra).eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(model.latent(x), model(x).latent, atol=1e-6)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        model.train().latent(x)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_scvae_defaults_are_the_recommended_preset():
    preset = model_settings("small-32", "scvae")
    defaults = {k: p.default for k, p in inspect.signature(SCVAE.__init__).parameters.items() if k != "self"}
    for key, value in preset.items():
        got = list(defaults[key]) if isinstance(defaults[key], tuple) else defaults[key]
        assert got == value, key
    assert SCVAE.from_preset("small-32").config == SCVAE().config


def test_fsq_rounds_each_dimension_to_its_levels_with_a_straight_through_gradient():
    torch.manual_seed(0)
    model = FSQVAE(**SMALL, levels=[8, 5, 3])
    fsq = model.bottleneck.quantizer
    z = torch.randn(4, len([8, 5, 3]), 6, 6) * 3
    z.requires_grad_(True)
    codes = fsq.quantize(z.permute(0, 2, 3, 1))  # (B, h, w, 3) in [-1, 1], before project_out
    for c, levels in enumerate([8, 5, 3]):
        values = torch.unique(codes[..., c].detach())
        assert len(values) <= levels
        steps = torch.diff(values)
        assert torch.allclose(steps, steps[0].expand_as(steps), atol=1e-6)  # one uniform grid per dimension
        assert values.abs().max() <= 1 + 1e-6
    codes.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0  # rounding passes gradients straight through
    assert model.codebook_size == 120
    out = model(torch.rand(2, 3, 16, 16) * 2 - 1)
    assert out.indices.shape == (2, 8, 8) and int(out.indices.max()) < 120
    assert torch.allclose(model.decode(model.encode(torch.zeros(1, 3, 16, 16)).codes).sample,
                          model.decoder(model.bottleneck.quantize(model.encoder(torch.zeros(1, 3, 16, 16)))[0]), atol=1e-5)


def test_strong_vq_restarts_a_dead_code_on_encoder_outputs():
    torch.manual_seed(0)
    model = StrongVQVAE(**SMALL, codebook_size=16, codebook_dim=4, dead_code_threshold=2.0, kmeans_init=False)
    model.train()
    book = model.bottleneck.quantizer._codebook
    book.embed.data[0, 3] = torch.tensor([1.0, 0.0, 0.0, 0.0]) * 1e3  # a code no input is near
    book.cluster_size.data[0, 3] = 0.0  # ... and whose usage has decayed to nothing
    before = book.embed.data[0, 3].clone()
    model(torch.rand(4, 3, 16, 16) * 2 - 1)
    assert not torch.allclose(book.embed.data[0, 3], before)
    assert book.embed.data[0, 3].norm() < 10  # now an (l2-normalised) encoder output, not the far-away code


def test_a_quantizer_library_with_relative_restart_thresholds_is_refused_in_one_line(monkeypatch):
    """vector-quantize-pytorch 1.34 replaced the absolute threshold with a ratio of the mean usage; a model
    built on it would be another baseline, so building one names the pinned versions instead."""
    from vector_quantize_pytorch.vector_quantize_pytorch import Codebook

    from scvae.errors import ScvaeError

    real_init = Codebook.__init__

    def init_without_absolute_threshold(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        del self.threshold_ema_dead_code

    monkeypatch.setattr(Codebook, "__init__", init_without_absolute_threshold)
    for model_type in (StrongVQVAE, ResidualVQVAE):
        with pytest.raises(ScvaeError, match=r"vector-quantize-pytorch .* pip install 'vector-quantize-pytorch>=1.32,<1.34'"):
            model_type(**SMALL, codebook_size=16)


def test_lista_restarts_a_dead_atom_on_the_worst_represented_residual():
    torch.manual_seed(0)
    layer = LISTA(dct_dictionary(16, 36), n_iter=4, lam=0.1, learn_dictionary=True, dead_atom_threshold=1.0,
                  usage_decay=0.5)
    z = torch.randn(64, 16)
    codes = layer(z).detach()
    assert bool((codes != 0).sum(0).min() >= 2)  # every atom is used ...
    codes[:, 5] = 0  # ... but atom 5
    restarted = 0
    for _ in range(3):
        layer.update_usage(codes)
        restarted += layer.restart_dead_atoms(z, codes)
    assert restarted == 1  # only atom 5; its average fell below 1 on the second batch
    residual = z - layer.synthesize(codes)
    worst = residual.norm(dim=1).argmax()
    atom = layer.dictionary[:, 5]
    assert torch.allclose(atom, residual[worst] / residual[worst].norm(), atol=1e-5)
    with pytest.raises(ValueError, match="learn_dictionary"):
        LISTA(dct_dictionary(16, 36), dead_atom_threshold=1.0)


def test_entropy_of_a_known_distribution():
    # 1/2, 1/4, 1/8, 1/8: H = 1.75 bits exactly
    symbols = torch.tensor([0] * 400 + [1] * 200 + [2] * 100 + [3] * 100)
    assert entropy_bits(symbols) == pytest.approx(1.75)
    assert str(entropy_bits(torch.zeros(50))) == "0.0"  # not -0.0, which tables print as "-0"
    assert entropy_bits(torch.arange(256)) == pytest.approx(8.0)


@pytest.mark.parametrize("model_type", ["scvae", "ae", "vqvae", "vqvae-strong", "fsq", "rvq", "vae"])
def test_every_model_has_a_rate(model_type):
    torch.manual_seed(0)
    import skimage.data

    photo = skimage.data.astronaut()
    dataset = CropDataset([photo[i * 40:i * 40 + 40, i * 30:i * 30 + 40] for i in range(6)], 16, random_crop=False)
    kwargs = dict(SMALL, n_atoms=36, max_active=4) if model_type == "scvae" else dict(SMALL)
    model = MODEL_REGISTRY[model_type](**kwargs)
    rate = estimate_rate(model, dataset, batch_size=4)
    assert math.isfinite(rate.bits_per_image) and rate.bits_per_image >= 0
    assert rate.bits_per_pixel == pytest.approx(rate.bits_per_image / 256)
    if model_type in ("scvae", "ae"):
        assert rate.psnr >= rate.psnr_unquantised - 0.1 and rate.step is not None
    if model_type in ("vqvae", "vqvae-strong", "fsq", "rvq"):
        assert rate.bits_per_image <= rate.bound_bits_per_image + 1e-9


def test_a_large_fsq_codebook_is_rated_by_its_dimensions():
    """With more implicit codes than positions, the plug-in entropy of indices is capped at log2(positions)
    bits; the rate is then the sum of per-dimension entropies, each at most log2(levels[i])."""
    torch.manual_seed(0)
    model = FSQVAE(**SMALL, levels=[7, 5, 5, 5, 5])  # 21,875 codes against 6 x 64 positions
    levels = model.level_indices(torch.tensor([[[0, 1, 7, 21874]]]))
    assert levels[0, :, 0, :].T.tolist() == [[0, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [6, 4, 4, 4, 4]]
    import skimage.data

    dataset = CropDataset([skimage.data.astronaut()[i * 40:i * 40 + 40, :40] for i in range(6)], 16, random_crop=False)
    rate = estimate_rate(model, dataset, batch_size=4)
    assert rate.method.startswith("sum of the FSQ dimensions")
    codes = torch.cat([model.encode(x).codes for _, x in dataset.eval_batches(4)])
    per_dim = [entropy_bits(model.level_indices(codes)[:, i]) for i in range(5)]
    assert rate.bits_per_image == pytest.approx(sum(per_dim) * 64)
    assert entropy_bits(codes) * 64 <= rate.bits_per_image <= rate.bound_bits_per_image + 1e-9
    with pytest.raises(ValueError, match="2\\*\\*24"):
        FSQVAE(**SMALL, levels=[8] * 11)


def test_sparse_rate_counts_support_and_coefficients():
    """Quantised sparse codes: the rate is at least the entropy of the support alone."""
    torch.manual_seed(0)
    model = SCVAE(**SMALL, n_atoms=36, max_active=4)
    import skimage.data

    dataset = CropDataset([skimage.data.coffee()[:64, i * 40:i * 40 + 64] for i in range(4)], 16, random_crop=False)
    rate = estimate_rate(model, dataset)
    assert rate.support_bits_per_image is not None
    assert rate.bits_per_image >= rate.support_bits_per_image - 1e-6


def test_ae_round_trips(tmp_path):
    model = AE(**SMALL)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    model.save_pretrained(tmp_path / "ae")
    same = AE.from_pretrained(tmp_path / "ae")
    assert torch.allclose(model.eval()(x).reconstruction, same(x).reconstruction)


def test_selection_bias_brings_unused_atoms_into_the_codes_without_changing_values():
    torch.manual_seed(0)
    layer = LISTA(dct_dictionary(16, 36), n_iter=4, lam=0.05, max_active=4, balance_step=0.05, usage_floor=0.5)
    uncapped = LISTA(dct_dictionary(16, 36), n_iter=4, lam=0.05)
    dictionary = dct_dictionary(16, 36)
    z = torch.randn(256, 8) @ dictionary[:, :8].T + 0.3 * torch.randn(256, 16)  # mostly 8 atoms
    used_before = int((layer(z) != 0).any(0).sum())
    assert used_before < 30
    for _ in range(60):
        below = layer.update_usage(layer(z))
    codes = layer(z)
    assert int((codes != 0).any(0).sum()) > used_before
    assert below < 36 and layer.selection_bias.max() > 0
    kept = codes != 0
    assert torch.equal(codes[kept], uncapped(z)[kept])  # the bias chooses entries, never changes them
    assert int(kept.sum(1).max()) <= 4


@pytest.mark.parametrize("model_type", ["scvae", "ae", "vqvae", "vqvae-strong", "fsq", "rvq", "vae"])
def test_loss_terms_are_detached_and_the_loss_is_not(model_type):
    kwargs = dict(SMALL, n_atoms=36, max_active=4) if model_type == "scvae" else dict(SMALL)
    out = MODEL_REGISTRY[model_type](**kwargs).train()(torch.rand(2, 3, 16, 16) * 2 - 1)
    assert out.loss.requires_grad
    assert out.losses and not any(v.requires_grad for v in out.losses.values())


@pytest.mark.parametrize("model_type", ["scvae", "ae", "vqvae", "vqvae-strong", "fsq", "rvq", "vae"])
def test_inference_codes_carry_no_graph_but_training_codes_do(model_type):
    kwargs = dict(SMALL, n_atoms=36, max_active=4) if model_type == "scvae" else dict(SMALL)
    model = MODEL_REGISTRY[model_type](**kwargs)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    model.eval()
    codes = model.encode(x).codes
    assert codes.grad_fn is None and model.code_vectors(codes).grad_fn is None
    if model_type in ("scvae", "ae", "vae"):  # continuous codes: differentiable while training
        assert model.train().encode(x).codes.requires_grad


@pytest.mark.parametrize("model_type", ["scvae", "ae", "vqvae", "vqvae-strong", "fsq", "rvq", "vae"])
def test_decoding_the_codes_is_the_forward_reconstruction_on_any_grid(model_type):
    torch.manual_seed(0)
    kwargs = dict(SMALL, n_atoms=36, max_active=4) if model_type == "scvae" else dict(SMALL)
    model = MODEL_REGISTRY[model_type](**kwargs)
    model.train()(torch.rand(8, 3, 16, 16) * 2 - 1)  # one training pass (k-means init of the strong VQ)
    model.eval()
    x = torch.rand(2, 3, 16, 24) * 2 - 1  # an 8 x 12 grid: no axis equal to another by chance
    assert torch.allclose(model.decode(model.encode(x).codes).sample, model(x).reconstruction, atol=1e-5)


def test_strong_vq_lookup_agrees_with_the_library():
    torch.manual_seed(0)
    model = StrongVQVAE(**SMALL, codebook_size=64, codebook_dim=4)
    model.train()(torch.rand(8, 3, 16, 16) * 2 - 1)
    model.eval()
    z = model.encoder(torch.rand(4, 3, 16, 24) * 2 - 1)
    assert torch.equal(model.nearest_codes(z), model.bottleneck.quantize(z)[1])


def test_residual_vq_decodes_the_sum_of_its_stages_as_the_library_does():
    torch.manual_seed(0)
    model = ResidualVQVAE(**SMALL, codebook_size=32, num_quantizers=3)
    model.train()(torch.rand(8, 3, 16, 16) * 2 - 1)  # k-means init of every stage
    model.eval()
    z = model.encoder(torch.rand(2, 3, 16, 24) * 2 - 1)  # an 8 x 12 grid
    quantized, indices, _ = model.bottleneck.quantize(z)
    assert indices.shape == (2, 3, 8, 12) and torch.equal(model.nearest_codes(z), indices)
    library = model.bottleneck.quantizer.get_output_from_indices(indices.flatten(2).transpose(1, 2))  # (B, h*w, d)
    assert torch.allclose(model.bottleneck.vectors_from_indices(indices), library.transpose(1, 2).reshape(2, 16, 8, 12), atol=1e-6)
    assert torch.allclose(model.bottleneck.vectors_from_indices(indices), quantized, atol=1e-5)
    # each stage quantises what the ones before left, so the error falls stage by stage
    books = model.bottleneck.quantizer.codebooks
    errors = [(z - sum(books[q][indices[:, q]] for q in range(n)).permute(0, 3, 1, 2)).square().mean()
              for n in (1, 2, 3)]
    assert errors[0] > errors[1] > errors[2]


def test_residual_vq_rate_sums_its_stages_and_its_usage_counts_each_stage():
    from scvae.evaluation.diagnostics import CodebookDiagnostics
    from scvae.models.quantized import QuantizedOutput
    import skimage.data

    torch.manual_seed(0)
    model = ResidualVQVAE(**SMALL, codebook_size=16, num_quantizers=2)
    dataset = CropDataset([skimage.data.astronaut()[i * 40:i * 40 + 40, :40] for i in range(6)], 16, random_crop=False)
    rate = estimate_rate(model, dataset, batch_size=4)
    codes = torch.cat([model.encode(x).codes for _, x in dataset.eval_batches(4)])
    assert rate.method.startswith("sum of the residual stages")
    assert rate.bits_per_image == pytest.approx((entropy_bits(codes[:, 0]) + entropy_bits(codes[:, 1])) * 64)
    assert rate.bound_bits_per_image == pytest.approx(2 * 4 * 64)
    # stage 0 uses code 3 only, stage 1 codes 3 and 5: three of the 2 x 16 codes, not two
    indices = torch.tensor([[[[3, 3]], [[3, 5]]]])  # (B 1, Q 2, h 1, w 2)
    diagnostics = CodebookDiagnostics.for_model(model)
    diagnostics.update(QuantizedOutput(reconstruction=None, latent=None, loss=None, losses={}, indices=indices))
    result = diagnostics.result()
    assert result["codebook_size"] == 32 and result["codes_used"] == 3
    assert result["perplexity"] == pytest.approx(2 ** 1.5)  # shares 1/2, 1/4, 1/4


def test_every_layer_running_lista_shares_its_defaults():
    """LISTA, the bottleneck and SCVAE read n_iter and lam from one place; the cap (and the refit and balancing
    that need it) is the model's, off in the layers, as their docstrings say."""
    from scvae.sparse import LISTA, SparseCodingBottleneck

    def defaults(fn):
        return {k: p.default for k, p in inspect.signature(fn).parameters.items()}

    layers = [defaults(LISTA.__init__), defaults(SparseCodingBottleneck.__init__), defaults(SCVAE.__init__)]
    for key in ("n_iter", "lam", "learn_step", "learn_threshold", "usage_floor", "refit_ridge", "grad_iterations"):
        assert len({layer[key] for layer in layers}) == 1, key
    assert [layer["max_active"] for layer in layers] == [None, None, 33]
    assert "caps at 33" in SparseCodingBottleneck.__doc__ and "caps at 33" in LISTA.__doc__
