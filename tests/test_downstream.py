"""Interpolation and generation in code space, and the code-space hooks every model implements."""
import numpy as np
import pytest
import torch

from scvae import ScvaeError
from scvae.downstream import fit_code_prior, generate, interpolate, monotonicity_violation
from scvae.models import SCVAE, VAE, VQVAE
from scvae.training import load_model

from .tiny import TINY_BACKBONE

SMALL = TINY_BACKBONE


@pytest.fixture(scope="module")
def photos():
    import skimage.data

    photo = torch.from_numpy(skimage.data.astronaut()[:256:8, :256:8].copy()).permute(2, 0, 1).float() / 127.5 - 1
    return photo[:, :16, :16], photo[:, 16:, 16:]


def test_monotonicity_violation_measures_returns_towards_the_start():
    assert monotonicity_violation(torch.tensor([0.0, 1.0, 2.0, 3.0])) == 0.0
    assert monotonicity_violation(torch.tensor([0.0, 2.0, 1.0, 4.0])) == pytest.approx(0.25)
    assert monotonicity_violation(torch.tensor([0.0, 4.0, 0.0, 4.0])) == pytest.approx(1.0)


def test_interpolation_of_a_trained_model_moves_steadily_away_from_a(tiny_run, photos):
    model = load_model(tiny_run)
    a, b = photos
    result = interpolate(model, a, b, steps=8)
    assert result.images.shape == (8, 3, 16, 16)
    assert result.monotonicity_violation() < 0.05
    assert float(result.distance_to_start[-1]) > 0.05  # the path really goes somewhere
    # the end points are the reconstructions of A and B
    assert torch.allclose(result.images[0], model.reconstruct(a[None])[0], atol=1e-5)
    assert torch.allclose(result.images[-1], model.reconstruct(b[None])[0], atol=1e-5)
    # the same frames in a shuffled order are caught
    shuffled = result.distance_to_start[torch.tensor([0, 5, 1, 6, 2, 7, 3, 4])]
    assert monotonicity_violation(shuffled) > 0.05


def test_code_space_frames_keep_the_model_sparsity_and_latent_space_equals_unprojected_codes(photos):
    torch.manual_seed(0)
    model = SCVAE(**SMALL, n_atoms=36, max_active=4).eval()
    a, b = photos
    codes = model.encode(torch.stack([a, b])).codes
    midpoint = model.nearest_codes((codes[:1] + codes[1:]) / 2)
    assert int((midpoint != 0).sum(1).max()) <= 4
    assert int(((codes[:1] + codes[1:]) != 0).sum(1).max()) > 4  # the union support is larger: projection mattered
    latent = interpolate(model, a, b, steps=3, space="latent").images[1]
    unprojected = model.decode((codes[:1] + codes[1:]) / 2).sample[0].clamp(-1, 1)
    assert torch.allclose(latent, unprojected, atol=1e-5)


@pytest.mark.parametrize("cls", [VAE, VQVAE])
def test_baselines_interpolate_and_round_trip_their_codes(cls, photos):
    torch.manual_seed(0)
    model = cls(**SMALL).eval()
    a, b = photos
    codes = model.encode(a[None]).codes
    assert torch.equal(model.nearest_codes(model.code_vectors(codes)), codes)
    assert interpolate(model, a, b, steps=4).images.shape == (4, 3, 16, 16)


def test_interpolation_rejects_bad_arguments(photos):
    model = SCVAE(**SMALL, n_atoms=36).eval()
    a, b = photos
    with pytest.raises(ScvaeError, match="steps must be >= 2"):
        interpolate(model, a, b, steps=1)
    with pytest.raises(ScvaeError, match="space must be one of"):
        interpolate(model, a, b, space="pixels")
    with pytest.raises(ScvaeError, match="same shape"):
        interpolate(model, a, b[:, :8])


def test_code_prior_recovers_a_known_mixture_and_measures_novelty():
    rng = np.random.default_rng(0)
    centres = np.array([[3.0, 0.0], [-3.0, 0.0]])
    points = centres[rng.integers(0, 2, 600)] + 0.3 * rng.standard_normal((600, 2))
    # embed the 2-d mixture in a 4-channel 1x2 "code map" (8 numbers) through a fixed linear map
    lift = rng.standard_normal((2, 8))
    vectors = torch.from_numpy(points @ lift).float().reshape(600, 4, 1, 2)
    prior = fit_code_prior(vectors, n_components=2, n_mixtures=2)
    samples, coordinates = prior.sample(400, seed=1)
    assert samples.shape == (400, 4, 1, 2)
    recovered = np.linalg.lstsq(lift.T, samples.reshape(400, 8).double().numpy().T, rcond=None)[0].T
    assert (np.abs(np.abs(recovered[:, 0]) - 3.0) < 1.2).mean() > 0.95  # samples sit in the two modes
    assert abs((recovered[:, 0] > 0).mean() - 0.5) < 0.1  # in the right proportions
    assert np.median(prior.novelty(prior.train_coordinates)) == pytest.approx(0.0)  # training points are copies
    assert np.median(prior.novelty(coordinates)) > 0.2


def test_generate_decodes_valid_sparse_codes(tiny_run):
    model = load_model(tiny_run)
    vectors = torch.randn(40, model.n_atoms, 8, 8).relu()
    result = generate(model, fit_code_prior(vectors, n_components=8, n_mixtures=2), n=5)
    assert result.images.shape == (5, 3, 16, 16) and result.images.abs().max() <= 1
    assert int((result.codes != 0).sum(1).max()) <= model.config["max_active"]
    assert result.novelty.shape == (5,)
    with pytest.raises(ScvaeError, match="at least 4"):
        fit_code_prior(vectors[:3])
