"""Sample quality in a small classifier's features (scvae.evaluation.sample_quality): cases with known answers."""
import numpy as np
import torch

from scvae.evaluation.sample_quality import SmallClassifier, classifier_features, sample_quality, train_classifier


def test_identical_sets_score_zero_distance_and_full_precision_and_recall():
    x = np.random.default_rng(0).normal(size=(400, 8))
    q = sample_quality(x, x.copy())
    assert abs(q.frechet) < 1e-6 and q.precision == 1.0 and q.recall == 1.0


def test_a_shifted_set_scores_the_squared_shift_and_loses_precision_and_recall():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(2000, 4))
    shift = np.array([6.0, 0, 0, 8.0])  # |shift|^2 = 100
    q = sample_quality(real, real + shift)  # the same covariance: the distance is the mean term alone
    assert abs(q.frechet - 100.0) < 1e-6
    assert q.precision < 0.05 and q.recall < 0.05
    near = sample_quality(real, rng.normal(size=(2000, 4)))  # a fresh draw of the same distribution
    assert near.frechet < 0.05 and near.precision > 0.8 and near.recall > 0.8


def test_a_collapsed_set_keeps_precision_but_loses_recall():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(1000, 2))
    collapsed = real[np.linalg.norm(real, axis=1) < 0.3]  # real-looking, but one small region
    q = sample_quality(real, collapsed)
    assert q.precision == 1.0 and q.recall < 0.3


def test_the_classifier_learns_two_told_apart_classes_and_gives_128_features():
    g = torch.Generator().manual_seed(0)
    dark = torch.rand(64, 3, 16, 16, generator=g) * 0.5 - 1
    bright = torch.rand(64, 3, 16, 16, generator=g) * 0.5 + 0.5
    images, labels = torch.cat([dark, bright]), torch.cat([torch.zeros(64), torch.ones(64)]).long()
    net = train_classifier(images, labels, epochs=8, batch_size=32, lr=1e-2, progress=False)
    assert isinstance(net, SmallClassifier)
    assert (net(images).argmax(1) == labels).float().mean() > 0.95
    features = classifier_features(net, images)
    assert features.shape == (128, 128) and features.dtype == np.float64
