"""Image-level features from any family's codes or latent, and the anchors they are compared with.

A feature is named ``SOURCE:POOLING``. Sources, each a map (B, F, h, w) computed from one model (no second
network on the pixels):

- ``codes``: the model's code vectors (SC-VAE: the sparse codes (K,); VQ: the chosen code vector; VAE: the
  posterior mean; AE: the latent);
- ``latent``: the continuous latent the bottleneck receives, as it sees it (SC-VAE: RMS-normalised);
- ``atoms``: the latent encoded against the atoms of a 2-D DCT dictionary by a soft threshold,
  ``max(0, |D^T z| - alpha)`` with the sign kept, Coates & Ng's (ICML 2011) encoder (SC-VAE: its own
  dictionary; any other family: the same DCT dictionary for its latent's size);
- ``decoder``: the codes read back into the latent space, the decoder's input (SC-VAE: D a, which compares
  two codes by what they reconstruct rather than by which of its coherent atoms they picked; VQ: the chosen
  code vector; AE: the latent);
- ``kmeans``: the latent's positions encoded by k-means triangle codes (:mod:`.patch_kmeans`), fitted on the
  training images; every family gets it. ``decoder-kmeans``: the same of the ``decoder`` map.

Anchors with no model: ``pixels`` (the image itself) and ``coates`` (the k-means triangle recipe on
whitened 6 x 6 pixel patches, stride 1, 400 centroids).

A model's source takes two modifiers: ``@D``, the map on a grid ``D`` times finer (``D`` x ``D`` shifted
copies of the image), and ``/S``, the map of the image downscaled ``S`` times, a coarser grid whose cells
see ``S`` times as much of the image: ``kmeans@2/2:quadrant-sum``. Features joined by ``+`` are
concatenated, each fitted on its own: ``kmeans@2:quadrant-sum+kmeans@2/2:quadrant-sum`` is a two-scale
pyramid of the same model's latent.

Poolings over the grid: ``flat`` (every position), ``quadrant-sum`` (sum over the 2 x 2 quadrants),
``pyramid-sum`` / ``pyramid-max`` (the whole grid plus its quadrants); a ``split-`` prefix first splits
each feature into its positive and negative parts (two non-negative channels), as Coates & Ng do; a
``sqrt-`` prefix (after ``split-``) takes the signed square root of the pooled values, the power
normalisation of Perronnin et al. (ECCV 2010), which damps the few cells whose sums are large.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ScvaeError
from ..models import AutoencoderModel
from ..sparse import dct_dictionary
from .patch_kmeans import PatchKMeans, fit_patch_kmeans

MODEL_SOURCES = ("codes", "latent", "atoms", "decoder", "kmeans", "decoder-kmeans")
KMEANS_BASES = {"kmeans": "latent", "decoder-kmeans": "decoder"}  # a k-means source -> the map it encodes
ANCHOR_SOURCES = ("pixels", "coates")
FITTED_SOURCES = ("coates", *KMEANS_BASES)  # sources whose encoder is learned from the training images
POOLINGS = ("flat", "quadrant-sum", "pyramid-sum", "pyramid-max")
PYRAMID_LEVELS = {"quadrant": (2,), "pyramid": (1, 2)}
ATOM_THRESHOLD = 0.25  # alpha: the cosine between an atom and the latent below which it stays silent
COATES = {"n_centroids": 400, "patch": 6, "stride": 1}
LATENT_KMEANS = {"n_centroids": 1600, "patch": 1, "stride": 1}
DEFAULT_FEATURES = ("codes:flat", "codes:split-quadrant-sum", "latent:split-quadrant-sum", "atoms:split-quadrant-sum")
ANCHOR_FEATURES = ("pixels:flat", "coates:quadrant-sum")


@dataclass(frozen=True)
class FeatureSpec:
    """One named feature: ``source`` (see the module docstring), ``pooling``, ``split`` (polarity), ``sqrt``
    (signed square root of the pooled values) and ``density``: a model's map computed on ``density`` x
    ``density`` shifted copies of the image and interleaved, a grid ``density`` times finer (``SOURCE@D``;
    1: the model's own grid)."""

    source: str
    pooling: str
    split: bool = False
    density: int = 1
    sqrt: bool = False
    scale: int = 1

    @classmethod
    def parse(cls, name: str) -> "FeatureSpec":
        source, _, pooling = name.partition(":")
        pooling = pooling or "flat"
        source, _, scale = source.partition("/")
        source, _, density = source.partition("@")
        for value, what, example in ((density, "density", "latent@2"), (scale, "scale", "kmeans@2/2")):
            if value and (not value.isdigit() or int(value) < 1):
                raise ScvaeError(f"{what} must be a positive integer in {name!r}, e.g. {example}:quadrant-sum")
            if value and source in ANCHOR_SOURCES:
                raise ScvaeError(f"{name!r}: only a model's features take a {what}")
        split = pooling.startswith("split-")
        pooling = pooling.removeprefix("split-")
        sqrt = pooling.startswith("sqrt-")
        pooling = pooling.removeprefix("sqrt-")
        if source not in MODEL_SOURCES + ANCHOR_SOURCES:
            raise ScvaeError(f"unknown feature source {source!r} in {name!r}; choose one of: "
                             f"{', '.join(MODEL_SOURCES + ANCHOR_SOURCES)}")
        if pooling not in POOLINGS:
            raise ScvaeError(f"unknown pooling {pooling!r} in {name!r}; choose one of: {', '.join(POOLINGS)}, "
                             f"each optionally with a 'split-' and then a 'sqrt-' prefix")
        return cls(source, pooling, split, int(density or 1), sqrt, int(scale or 1))

    @property
    def name(self) -> str:
        density = f"@{self.density}" if self.density > 1 else ""
        scale = f"/{self.scale}" if self.scale > 1 else ""
        prefixes = ("split-" if self.split else "") + ("sqrt-" if self.sqrt else "")
        return f"{self.source}{density}{scale}:{prefixes}{self.pooling}"

    @property
    def needs_model(self) -> bool:
        return self.source in MODEL_SOURCES


def pool(maps: torch.Tensor, pooling: str, split: bool = False, sqrt: bool = False) -> torch.Tensor:
    """(B, F, h, w) -> (B, D): D = F h w for ``flat``, F x (cells of the pyramid's levels) otherwise;
    ``split`` doubles F into the positive and negative parts first; ``sqrt`` maps each pooled value v to
    sign(v) |v| ** 0.5."""
    pooled = _pool(maps, pooling, split)
    return pooled.sign() * pooled.abs().sqrt() if sqrt else pooled


def _pool(maps: torch.Tensor, pooling: str, split: bool) -> torch.Tensor:
    maps = maps.float()
    if split:
        maps = torch.cat([maps.clamp_min(0), (-maps).clamp_min(0)], dim=1)
    if pooling == "flat":
        return maps.flatten(1)
    kind, _, op = pooling.partition("-")
    pooled = []
    for level in PYRAMID_LEVELS[kind]:
        cells = F.adaptive_max_pool2d(maps, level) if op == "max" else F.adaptive_avg_pool2d(maps, level) * (
            maps.shape[2] * maps.shape[3] / level ** 2)
        pooled.append(cells.flatten(1))
    return torch.cat(pooled, dim=1)


def soft_threshold_atoms(latent: torch.Tensor, dictionary: torch.Tensor, alpha: float = ATOM_THRESHOLD
                         ) -> torch.Tensor:
    """(B, d, h, w) latent, (d, K) unit-norm atoms -> (B, K, h, w): ``sign(s) max(0, |s| - alpha ||z||)``
    with ``s = D^T z``: an atom fires where its cosine with the latent exceeds ``alpha``."""
    s = torch.einsum("bdhw,dk->bkhw", latent.float(), dictionary.float())
    norm = latent.float().norm(dim=1, keepdim=True).clamp_min(1e-6)
    return s.sign() * (s.abs() - alpha * norm).clamp_min(0)


def model_dictionary(model: AutoencoderModel, dim: int) -> torch.Tensor:
    """The model's own atoms (d, K) if it has any (SC-VAE), else a 4x overcomplete DCT dictionary for ``dim``."""
    lista = getattr(model.bottleneck, "lista", None)
    if lista is not None:
        return lista.dictionary.detach().float()
    side = int(round(dim ** 0.5))
    return dct_dictionary(dim, 4 * side * side if side * side == dim else 4 * dim)


def model_maps(model: AutoencoderModel, images: torch.Tensor, source: str, density: int = 1,
               batch: int = 256, scale: int = 1) -> torch.Tensor:
    """(N, C, H, W) images in [-1, 1] -> (N, F, h d / s, w d / s) of ``source`` (``codes``, ``latent``,
    ``atoms`` or ``decoder``) on a grid ``d = density`` times finer than the model's: the image shifted by
    multiples of f / d pixels (borders reflected) and each copy's grid interleaved in the order of the cells'
    image positions.
    With ``s = scale`` > 1 the image is first downscaled ``s`` times (antialiased bilinear)."""
    if scale > 1:
        images = downscale(images, scale, model.downsampling_factor)
    if density == 1:
        return _maps(model, images, source, batch)
    f = model.downsampling_factor
    if f % density:
        raise ScvaeError(f"density {density} must divide the model's downsampling factor {f}")
    h, w = images.shape[2:]
    padded = F.pad(images, (f, f, f, f), mode="reflect")
    dense = None
    for a in range(density):
        for b in range(density):
            dy, dx = a * f // density, b * f // density  # the copy's content moves down / right by (dy, dx)
            maps = _maps(model, padded[:, :, f - dy:f - dy + h, f - dx:f - dx + w], source, batch)
            if dense is None:
                dense = maps.new_zeros(*maps.shape[:2], maps.shape[2] * density, maps.shape[3] * density)
            # a cell of this copy covers image rows from i f - dy: later in the image for smaller dy
            dense[:, :, density - 1 - a::density, density - 1 - b::density] = maps
    return dense


def downscale(images: torch.Tensor, scale: int, factor: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H / scale, W / scale), antialiased; the result must still be a whole number of
    the model's ``factor``-pixel cells."""
    h, w = images.shape[2:]
    if h % scale or w % scale or (h // scale) % factor or (w // scale) % factor:
        raise ScvaeError(f"scale {scale}: {h} x {w} px images downscaled {scale} times are not a whole number "
                         f"of the model's {factor}-pixel cells")
    return F.interpolate(images.float(), size=(h // scale, w // scale), mode="bilinear", antialias=True,
                         align_corners=False)


@torch.no_grad()
def _maps(model: AutoencoderModel, images: torch.Tensor, source: str, batch: int) -> torch.Tensor:
    model.eval()
    device = next(model.parameters()).device
    out = []
    for chunk in images.split(batch):
        chunk = chunk.to(device)
        if source in ("codes", "decoder"):
            codes = model.encode(chunk).codes
            maps = model.code_vectors(codes) if source == "codes" else model.synthesize(codes)
        else:
            maps = model.latent(chunk)
            if source == "atoms":
                maps = soft_threshold_atoms(maps, model_dictionary(model, maps.shape[1]).to(maps.device))
        out.append(maps.float().cpu())
    return torch.cat(out)


class FeatureExtractor:
    """Turns images into one feature's (N, D) matrix. Learned parts (``kmeans``, ``coates``) are fitted on
    the first call's images, the training images: call :meth:`fit` on them, then the instance on any set."""

    def __init__(self, spec: FeatureSpec, model: AutoencoderModel | None = None, seed: int = 0):
        if spec.needs_model and model is None:
            raise ScvaeError(f"feature {spec.name!r} needs a model (--model)")
        self.spec, self.model, self.seed = spec, model, seed
        self.encoder: PatchKMeans | None = None
        self._fitted: tuple[torch.Tensor, torch.Tensor] | None = None  # (images, base map) fit() computed

    def _maps(self, images: torch.Tensor) -> torch.Tensor:
        source = self.spec.source
        if source in ("pixels", "coates"):
            return images.float()
        if source in KMEANS_BASES:
            return self._base_maps(images)
        return self._model_maps(images, source)

    def _model_maps(self, images: torch.Tensor, source: str) -> torch.Tensor:
        return model_maps(self.model, images, source, self.spec.density, scale=self.spec.scale)

    def fit(self, images: torch.Tensor) -> "FeatureExtractor":
        if self.spec.source == "coates":
            self.encoder = fit_patch_kmeans(images, **COATES, seed=self.seed)
        elif self.spec.source in KMEANS_BASES:
            self._fitted = images, self._model_maps(images, KMEANS_BASES[self.spec.source])
            self.encoder = fit_patch_kmeans(self._fitted[1], **LATENT_KMEANS, contrast_eps=None, seed=self.seed)
        return self

    def _base_maps(self, images: torch.Tensor) -> torch.Tensor:
        """The map a k-means source encodes; for the training images, the one fit() computed."""
        if self._fitted is not None and self._fitted[0] is images:
            return self._fitted[1]
        return self._model_maps(images, KMEANS_BASES[self.spec.source])

    def __call__(self, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """(N, C, H, W) images -> (N, D) features, pooled a batch at a time: unpooled, 400 maps of 27 x 27 per
        image (``coates``) would take 12 GB for 10,000 images, and SC-VAE's codes at K 1,024 on a 2x finer
        grid 9 GB for 9,000."""
        if self.spec.source in FITTED_SOURCES and self.encoder is None:
            raise ScvaeError(f"feature {self.spec.name!r}: call fit() on the training images first")
        if self.encoder is None:
            return torch.cat([self._pool(self._maps(chunk)) for chunk in images.split(batch)])
        maps = self._maps(images)
        return torch.cat([self._pool(self.encoder(chunk)) for chunk in maps.split(batch)])

    def _pool(self, maps: torch.Tensor) -> torch.Tensor:
        return pool(maps, self.spec.pooling, self.spec.split, self.spec.sqrt)


FEATURE_JOIN = "+"


def parse_features(name: str) -> list[FeatureSpec]:
    """``A+B+...`` -> the specs of its parts, in order; every part checked."""
    return [FeatureSpec.parse(part) for part in name.split(FEATURE_JOIN)]


def feature_name(specs: list[FeatureSpec]) -> str:
    """The inverse of :func:`parse_features`: the parts' names joined by ``+``."""
    return FEATURE_JOIN.join(spec.name for spec in specs)


class JoinedFeatures:
    """Features joined by ``+``: one :class:`FeatureExtractor` per part, each fitted on its own, their
    (N, D_i) matrices concatenated into (N, sum D_i)."""

    def __init__(self, specs: list[FeatureSpec], model: AutoencoderModel | None = None, seed: int = 0):
        self.parts = [FeatureExtractor(spec, model, seed) for spec in specs]
        self.name = feature_name(specs)

    def fit(self, images: torch.Tensor) -> "JoinedFeatures":
        for part in self.parts:
            part.fit(images)
        return self

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([part(images) for part in self.parts], dim=1)
