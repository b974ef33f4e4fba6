"""Image generation from a simple prior fitted to the training set's codes.

The prior (:class:`CodePrior`) is deliberately simple and fully documented:

1. every training image is encoded and its whole code map (F, h, w) (SC-VAE: the sparse codes
   (K, h, w)) is flattened to one vector of F * h * w numbers;
2. PCA (scikit-learn, whitened) keeps the ``n_components`` directions of largest variance;
3. a Gaussian mixture (``n_mixtures`` full-covariance components) is fitted to those coordinates;
4. a sample is drawn from the mixture, mapped back through the PCA, reshaped to (F, h, w), projected to
   the nearest code the model can produce (SC-VAE: the ``max_active`` largest entries per position)
   and decoded.

What it is not: not a learned autoregressive or diffusion prior (the paper releases none), not a
likelihood to compare models with, and not able to create detail outside the PCA subspace. With few
training images it can reproduce near-copies; :attr:`GenerationResult.novelty` measures that.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import CropDataset
from ..errors import ScvaeError
from ..models import AutoencoderModel
from ..presets import GENERATION_DEFAULTS


@dataclass
class CodePrior:
    """PCA + Gaussian mixture over flattened code maps of shape ``code_shape`` (F, h, w)."""

    code_shape: tuple[int, int, int]
    pca: object  # sklearn.decomposition.PCA
    mixture: object  # sklearn.mixture.GaussianMixture
    train_coordinates: np.ndarray  # (N, n_components) PCA coordinates of the training codes

    @property
    def n_components(self) -> int:
        return int(self.train_coordinates.shape[1])

    def sample(self, n: int, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
        """n code maps (n, F, h, w) in the code space (not yet projected), and their PCA coordinates."""
        self.mixture.random_state = seed
        coordinates, _ = self.mixture.sample(n)
        rng = np.random.default_rng(seed)
        coordinates = coordinates[rng.permutation(n)]  # the mixture returns samples grouped by component
        flat = self.pca.inverse_transform(coordinates)
        return torch.from_numpy(flat.astype(np.float32)).reshape(n, *self.code_shape), coordinates

    def novelty(self, coordinates: np.ndarray) -> np.ndarray:
        """Distance of each point to its nearest training code, divided by the median distance of a
        training code to its nearest other training code: ~1 is as new as a training image is to the
        rest; near 0 is a copy. NaN when most training codes repeat exactly (too few distinct images to
        say: that median is 0)."""
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(n_neighbors=2).fit(self.train_coordinates)
        typical = float(np.median(nn.kneighbors(self.train_coordinates)[0][:, 1]))
        nearest = nn.kneighbors(coordinates, n_neighbors=1)[0][:, 0]
        return nearest / typical if typical > 1e-9 else np.full(len(nearest), np.nan)


@dataclass
class GenerationResult:
    """images (n, C, H, W) in [-1, 1]; codes as the model takes them; novelty (n,) (see CodePrior)."""

    images: torch.Tensor
    codes: torch.Tensor
    novelty: np.ndarray


@torch.no_grad()
def collect_code_vectors(model: AutoencoderModel, dataset: CropDataset, n_images: int = 2000,
                         batch_size: int = 64, seed: int = 0, progress: bool = True) -> torch.Tensor:
    """Code vectors (n, F, h, w) of ``n_images`` crops of ``dataset`` (random crops, seeded, cycling
    through the images so that large images give several crops)."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    order = [i % len(dataset) for i in range(n_images)]
    chunks = []
    for start in tqdm(range(0, n_images, batch_size), desc="encoding training codes", unit="batch",
                      disable=not progress, leave=False):
        x = dataset.batch(order[start:start + batch_size], generator)
        chunks.append(model.code_vectors(model.encode(x).codes).cpu())
    return torch.cat(chunks)


def fit_code_prior(vectors: torch.Tensor, n_components: int = GENERATION_DEFAULTS["components"],
                   n_mixtures: int = GENERATION_DEFAULTS["mixtures"],
                   seed: int = 0) -> CodePrior:
    """Fit the PCA + Gaussian-mixture prior to code maps ``vectors`` (N, F, h, w)."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    n = vectors.shape[0]
    if n < 4:
        raise ScvaeError(f"need at least 4 training codes to fit a prior, got {n}")
    flat = vectors.detach().reshape(n, -1).double().cpu().numpy()
    components = max(1, min(n_components, n - 1, flat.shape[1]))
    pca = PCA(n_components=components, whiten=True, random_state=seed).fit(flat)
    coordinates = pca.transform(flat)
    mixtures = max(1, min(n_mixtures, n // (2 * components) or 1))
    mixture = GaussianMixture(n_components=mixtures, covariance_type="full", reg_covar=1e-3,
                              random_state=seed).fit(coordinates)
    return CodePrior(tuple(vectors.shape[1:]), pca, mixture, coordinates)


@torch.no_grad()
def generate(model: AutoencoderModel, prior: CodePrior, n: int = 16, seed: int = 0) -> GenerationResult:
    """Sample ``n`` code maps from ``prior``, project them to valid codes, decode."""
    if n < 1:
        raise ScvaeError(f"n must be a positive integer, got {n}")
    model.eval()
    vectors, coordinates = prior.sample(n, seed)
    codes = model.nearest_codes(vectors)
    images = model.decode(codes).sample.float().clamp(-1, 1)
    return GenerationResult(images=images, codes=codes, novelty=prior.novelty(coordinates))
