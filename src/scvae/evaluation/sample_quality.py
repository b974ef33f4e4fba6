"""Sample quality without downloaded weights: a Frechet distance and precision / recall in the feature
space of a small classifier trained here, on the training split only.

FID needs pytorch-fid's Inception weights (``--inception-weights``, :mod:`.fid`); where a user has none,
this is the measure. It is not FID and is never called that: the features are a small CIFAR-sized
convolutional classifier's (:class:`SmallClassifier`, its 128-d pooled last layer), so its numbers compare
models scored with the same classifier only.

- **Frechet distance**: between Gaussians fitted to real and generated features (:func:`.fid.frechet_distance`).
- **Precision / recall** (Kynkaanniemi et al., NeurIPS 2019): each real feature gets a ball reaching its k-th
  nearest real neighbour; precision is the fraction of generated features inside some real ball (samples
  that look real), recall the fraction of real features inside some generated ball (real variety covered).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .fid import frechet_distance

NEIGHBOURS = 3  # k of the precision / recall balls, the paper's choice


class SmallClassifier(nn.Module):
    """Five 3x3 convolutions with ReLU and three 2x max-pools, global average pooling to 128 features, a linear
    layer to ``n_classes``: (B, C, H, W) in [-1, 1] -> logits (B, n_classes)."""

    def __init__(self, n_classes: int, in_channels: int = 3):
        super().__init__()
        widths = [(in_channels, 32), (32, 32), "pool", (32, 64), (64, 64), "pool", (64, 128), "pool"]
        layers: list[nn.Module] = []
        for w in widths:
            layers += [nn.MaxPool2d(2)] if w == "pool" else [nn.Conv2d(*w, 3, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(128, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 128)."""
        return self.body(x).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train_classifier(images: torch.Tensor, labels: torch.Tensor, *, epochs: int = 10, batch_size: int = 128,
                     lr: float = 2e-3, seed: int = 0, progress: bool = True) -> SmallClassifier:
    """Fit a :class:`SmallClassifier` to ``images`` (N, C, H, W) in [-1, 1] and integer ``labels`` (N,) with
    Adam and random horizontal flips."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = SmallClassifier(int(labels.max()) + 1, images.shape[1])
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    steps = epochs * -(-len(images) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps)
    net.train()
    bar = tqdm(total=steps, desc="training the feature classifier", unit="step", disable=not progress, leave=False)
    for _ in range(epochs):
        for rows in torch.randperm(len(images), generator=generator).split(batch_size):
            x = images[rows]
            flip = torch.rand(len(x), generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            loss = F.cross_entropy(net(x), labels[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.update()
    bar.close()
    return net.eval()


@torch.no_grad()
def classifier_features(net: SmallClassifier, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, 128) float64."""
    net.eval()
    return torch.cat([net.features(chunk) for chunk in images.split(batch_size)]).double().numpy()


def _kth_distance(points: np.ndarray, k: int) -> np.ndarray:
    """Each point's distance to its k-th nearest other point of the set (N,)."""
    d = torch.cdist(torch.from_numpy(points), torch.from_numpy(points))
    return d.kthvalue(min(k + 1, len(points)), dim=1).values.numpy()  # the 1st is the point itself


def _covered(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Whether each query (M,) lies in at least one ball (centre, radius)."""
    d = torch.cdist(torch.from_numpy(queries), torch.from_numpy(centres))
    return (d <= torch.from_numpy(radii)[None]).any(1).numpy()


@dataclass
class SampleQuality:
    """``frechet``: Frechet distance in the classifier's features (not FID); ``precision``, ``recall`` in
    [0, 1]; the set sizes."""

    frechet: float
    precision: float
    recall: float
    n_real: int
    n_generated: int


def sample_quality(real: np.ndarray, generated: np.ndarray, k: int = NEIGHBOURS) -> SampleQuality:
    """Compare feature sets (N, d) of real and generated images."""
    real, generated = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    precision = _covered(generated, real, _kth_distance(real, k)).mean()
    recall = _covered(real, generated, _kth_distance(generated, k)).mean()
    return SampleQuality(frechet_distance(real, generated), float(precision), float(recall), len(real), len(generated))
