"""Representation probes: how well frozen features classify images, with a linear and a k-NN classifier.

The linear probe is scikit-learn's multinomial logistic regression on standardised features. Its
regularisation C is chosen inside the training images (never on the test images), then it is refit on all
of them. Two ways to choose: ``holdout`` (the default, which every earlier table used): a grid of factors of
10 scored on one validation fifth of 3,000 training images; ``cv``: a grid of half-decades scored by 3-fold
cross-validation on the same 3,000, so that a choice between neighbours does not rest on 600 images.
The k-NN probe votes among the ``k`` nearest training images by cosine similarity of the standardised
features. Each accuracy comes with a percentile bootstrap interval
over the test images; :func:`paired_interval` gives the interval of a difference between two features
scored on the same test images.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Iterable

import numpy as np
import torch

from ..data.labelled import LabelledImages, stratified_split
from ..errors import ScvaeError
from ..models import AutoencoderModel
from .features import JoinedFeatures, parse_features

log = logging.getLogger(__name__)
C_GRID = (1e-3, 1e-2, 1e-1, 1.0)  # logistic regression's inverse regularisation, chosen on validation
CV_C_GRID = tuple(10 ** (e / 2) for e in range(-8, 1))  # 1e-4, 3.2e-4, ..., 1: half-decades, for ``cv``
CV_FOLDS = 3
C_SELECTIONS = ("holdout", "cv")
DEFAULT_C_SELECTION = "holdout"  # the selection every earlier table used
VALIDATION_FRACTION = 0.2
SELECTION_IMAGES = 3000  # C is chosen on at most this many training images (a stratified subset), then refit on all
KNN_K = 10
BOOTSTRAP_DRAWS = 1000


@dataclass
class ProbeRow:
    """One feature's scores: accuracies in [0, 1] with 95 % bootstrap intervals; ``correct``: per test
    image, whether the linear probe was right (for paired comparisons)."""

    feature: str
    dims: int
    linear: float
    linear_interval: tuple[float, float]
    chosen_c: float
    knn: float | None
    knn_interval: tuple[float, float] | None
    seconds: float
    correct: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        """The scores, and ``correct`` as a string of 0 / 1 per test image, so that two features probed in
        separate runs on the same test images can be compared pairwise (:func:`paired_from_dicts`)."""
        row = asdict(self)
        row["correct"] = "".join("1" if c else "0" for c in self.correct)
        return row


@dataclass
class ProbeResult:
    """Every feature's row, the split's sizes and the class names."""

    rows: list[ProbeRow]
    n_train: int
    n_test: int
    classes: list[str]
    model: str | None = None
    test_labels: np.ndarray | None = field(default=None, repr=False)  # (N_test,), identifies the test images
    c_selection: str = DEFAULT_C_SELECTION

    def to_dict(self) -> dict:
        sha1 = None if self.test_labels is None else hashlib.sha1(np.asarray(self.test_labels, np.int64).tobytes())
        return {"model": self.model, "n_train": self.n_train, "n_test": self.n_test, "classes": self.classes,
                "c_selection": self.c_selection, "test_labels_sha1": sha1 and sha1.hexdigest(),
                "rows": [r.to_dict() for r in self.rows]}

    def table(self) -> str:
        """The result as a Markdown table."""
        lines = ["| feature | dims | linear probe | 95 % interval | C | k-NN |", "|---|---|---|---|---|---|"]
        for r in self.rows:
            knn = "-" if r.knn is None else f"{100 * r.knn:.1f} %"
            lines.append(f"| {r.feature} | {r.dims} | {100 * r.linear:.1f} % | "
                         f"[{100 * r.linear_interval[0]:.1f}, {100 * r.linear_interval[1]:.1f}] | {r.chosen_c:.2g} | {knn} |")
        return "\n".join(lines)


def bootstrap_interval(correct: np.ndarray, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the mean of ``correct`` (N,) over ``draws`` resamples of the test set."""
    rng = np.random.default_rng(seed)
    means = correct[rng.integers(0, len(correct), size=(draws, len(correct)))].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def paired_interval(a: np.ndarray, b: np.ndarray, draws: int = BOOTSTRAP_DRAWS, seed: int = 0
                    ) -> tuple[float, float, float]:
    """Accuracy of ``a`` minus that of ``b`` (per-image correctness on the same test images), with its 95 %
    paired bootstrap interval: (difference, low, high)."""
    return float(a.mean() - b.mean()), *bootstrap_interval(a.astype(float) - b.astype(float), draws, seed)


def paired_from_dicts(a: dict, feature_a: str, b: dict, feature_b: str) -> tuple[float, float, float]:
    """From two saved results (:meth:`ProbeResult.to_dict`, e.g. two ``scvae probe --json`` files): feature
    ``feature_a`` of ``a`` minus ``feature_b`` of ``b``, with the paired 95 % interval over the test images.
    Both must have been scored on the same test images in the same order (checked by their labels' hash)."""
    if not a.get("test_labels_sha1") or a.get("test_labels_sha1") != b.get("test_labels_sha1"):
        raise ScvaeError("the two results were not scored on the same test images (or predate per-image scores)")
    rows = []
    for result, feature in ((a, feature_a), (b, feature_b)):
        match = [r for r in result["rows"] if r["feature"] == feature]
        if not match or "correct" not in match[0]:
            raise ScvaeError(f"no per-image scores of {feature!r}; the result has: "
                             f"{', '.join(r['feature'] for r in result['rows'])}")
        rows.append(np.frombuffer(match[0]["correct"].encode(), np.uint8) == ord("1"))
    return paired_interval(*rows)


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean, std = train.mean(0), train.std(0) + 1e-6
    return [(x - mean) / std for x in (train, *others)]


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, *,
                 selection: str = DEFAULT_C_SELECTION,
                 c_grid: Iterable[float] | None = None, validation_fraction: float = VALIDATION_FRACTION,
                 seed: int = 0) -> tuple[np.ndarray, float]:
    """Logistic regression; C chosen by ``selection`` (see the module docstring) on (at most
    ``SELECTION_IMAGES`` of) the training set, then refit on all of it. Returns the test predictions
    (N_test,) and the chosen C."""
    from sklearn.linear_model import LogisticRegression

    _check_selection(selection)
    pool = np.arange(len(train_y))
    if len(pool) > SELECTION_IMAGES:
        _, pool = stratified_split(train_y, SELECTION_IMAGES / len(pool), seed + 1)
    grid = tuple(c_grid or (C_GRID if selection == "holdout" else CV_C_GRID))
    scores = dict.fromkeys(grid, 0.0)
    for fit_idx, val_idx in _selection_splits(train_y[pool], selection, validation_fraction, seed):
        fit_idx, val_idx = pool[fit_idx], pool[val_idx]
        fit_x, val_x = _standardise(train_x[fit_idx], train_x[val_idx])
        for c in grid:
            clf = LogisticRegression(C=c, max_iter=300, tol=1e-3).fit(fit_x, train_y[fit_idx])
            scores[c] += (clf.predict(val_x) == train_y[val_idx]).mean()
    best = max(scores, key=lambda c: (scores[c], -c))  # ties go to the stronger regularisation
    train_s, test_s = _standardise(train_x, test_x)
    clf = LogisticRegression(C=best, max_iter=300, tol=1e-3).fit(train_s, train_y)
    return clf.predict(test_s), float(best)


def _check_selection(selection: str) -> None:
    if selection not in C_SELECTIONS:
        raise ScvaeError(f"unknown C selection {selection!r}; choose one of: {', '.join(C_SELECTIONS)}")


def _selection_splits(labels: np.ndarray, selection: str, validation_fraction: float, seed: int
                      ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit, validation) index pairs into ``labels``: one stratified split, or ``CV_FOLDS`` stratified folds."""
    if selection == "holdout":
        return [stratified_split(labels, validation_fraction, seed)]
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(CV_FOLDS, shuffle=True, random_state=seed)
    return list(folds.split(np.zeros(len(labels)), labels))


def knn_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, k: int = KNN_K) -> np.ndarray:
    """Majority vote of the ``k`` nearest training images by cosine similarity (standardised features);
    ties go to the class of the nearest neighbour among them."""
    train_s, test_s = (torch.from_numpy(x).float() for x in _standardise(train_x, test_x))
    train_s, test_s = torch.nn.functional.normalize(train_s, dim=1), torch.nn.functional.normalize(test_s, dim=1)
    labels = torch.from_numpy(train_y)
    n_classes = int(train_y.max()) + 1
    predictions = []
    for chunk in test_s.split(1024):
        nearest = (chunk @ train_s.T).topk(k, dim=1).indices  # (b, k), nearest first
        votes = torch.nn.functional.one_hot(labels[nearest], n_classes).float()
        votes = votes.sum(1) + 1e-3 * votes[:, 0]  # the nearest neighbour breaks ties
        predictions.append(votes.argmax(1))
    return torch.cat(predictions).numpy()


def probe(train: LabelledImages, test: LabelledImages, features: list[str], model: AutoencoderModel | None = None,
          *, knn: bool = True, seed: int = 0, model_name: str | None = None,
          c_selection: str = DEFAULT_C_SELECTION) -> ProbeResult:
    """Score each feature of ``features`` (names such as ``codes:split-pyramid-sum``, or parts joined by
    ``+``, see :mod:`.features`) with the linear (and k-NN) probe, trained on ``train`` and tested on ``test``;
    ``c_selection``: how the linear probe's C is chosen (see the module docstring)."""
    _check_selection(c_selection)  # before any feature is computed
    rows = []
    for name in features:
        start = time.perf_counter()
        extractor = JoinedFeatures(parse_features(name), model, seed).fit(train.images)
        train_x, test_x = extractor(train.images).numpy(), extractor(test.images).numpy()
        predictions, c = linear_probe(train_x, train.labels, test_x, selection=c_selection, seed=seed)
        correct = predictions == test.labels
        knn_acc = knn_int = None
        if knn:
            knn_correct = knn_probe(train_x, train.labels, test_x) == test.labels
            knn_acc, knn_int = float(knn_correct.mean()), bootstrap_interval(knn_correct, seed=seed)
        rows.append(ProbeRow(extractor.name, train_x.shape[1], float(correct.mean()),
                             bootstrap_interval(correct, seed=seed), c, knn_acc, knn_int, time.perf_counter() - start,
                             correct))
        log.info("%s: linear %.1f %%, %d dims, %.0f s", extractor.name, 100 * rows[-1].linear, train_x.shape[1],
                 rows[-1].seconds)
    return ProbeResult(rows, len(train.labels), len(test.labels), train.classes, model_name, test.labels,
                       c_selection)
