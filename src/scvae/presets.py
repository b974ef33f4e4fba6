"""Named presets, kept in one registry: backbone + bottleneck settings + training defaults.

A preset's ``backbone`` is shared by every model type, so SC-VAE and its baselines are compared on
the same encoder/decoder; each model type adds its own bottleneck section.
"""
from __future__ import annotations

from typing import Any

from .errors import ScvaeError

PRESETS: dict[str, dict[str, Any]] = {}
# `scvae generate` and the report's generation section share these, so the report shows what the command makes
GENERATION_DEFAULTS = {"n": 16, "fit_images": 2000, "components": 64, "mixtures": 10, "seed": 0}
# scvae segment --method regions: the hierarchy's level cut, merge-codes' covering-best at ODS on BSDS500 train
# (docs/results/bsds_train.json); code_size, the shorter side images are encoded at, is the BSDS model's
# working size (64 px crops of photos resized to 2.5 x 64 = 160 px), and the merging works at that size too;
# margin, the reflected cells around the photo when it is encoded, 4 rather than the 8 of k-means segmentation
# (as good on 50 BSDS500 train photos and 0.12 s faster: docs/results.md, issue 35)
REGION_DEFAULTS = {"level": 0.9, "code_size": 160, "margin": 4}
# the region method with textons (scvae segment --texture textons): 128 textons of the latent, texture weight 2,
# cut at 1.8, chosen at ODS on 40 BSDS500 train photos (docs/results.md, *Segmentation on BSDS500*)
TEXTON_DEFAULTS = {"n_textons": 128, "texture_weight": 2.0, "level": 1.8}
# scvae prior train (scvae.prior.PriorTraining): the same budget for every family, so their bits compare
# binding "sum": on SC-VAE's default run, 1,000 steps, "product" cost 3.1 % more held-out bits and sampled worse
# (docs/results.md, *Stage 2*)
PRIOR_DEFAULTS = {"steps": 2000, "batch_size": 32, "lr": 1e-3, "images": 10_000, "save_every": 250,
                  "binding": "sum"}
PRIOR_BINDINGS = ("sum", "product")  # how the learned prior joins an entry's channel and value (scvae.prior.network)


# Every preset's backbone normalises each position on its own ("channel"; with GroupNorm, codes of inputs larger
# than the training crops fell 9-15 dB). Named in the preset, not left to the constructor, so a run's config.yaml
# records it: one written without it is a GroupNorm run (scvae.config.load_run_config).
PRESET_BACKBONE = {"norm": "channel"}


def register_preset(name: str, *, description: str, backbone: dict, train: dict | None = None,
                    **model_sections: dict) -> None:
    """``model_sections`` maps a model type (``scvae``, ``vqvae-strong``, ...) to its bottleneck settings;
    ``backbone`` is completed by :data:`PRESET_BACKBONE`."""
    PRESETS[name] = {"description": description, "backbone": {**PRESET_BACKBONE, **backbone}, "train": train or {},
                     **model_sections}


def model_settings(name: str, model_type: str) -> dict[str, Any]:
    """The constructor keywords preset ``name`` gives ``model_type``: its backbone plus that model's section."""
    spec = get_preset(name)
    return {**spec["backbone"], **spec.get(model_type, {})}


def get_preset(name: str) -> dict[str, Any]:
    try:
        return PRESETS[name]
    except KeyError:
        raise ScvaeError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None


# Every family shares the backbone and its 8x8 grid of 64-d latents (d = 8 x 8 for the 2-D DCT). SC-VAE: at
# most 33 of 256 atoms per code (12.9 %), their values refit by least squares on the chosen atoms; see
# docs/design.md for how the settings were chosen. Baselines:
# the plain autoencoder (the ceiling), the plain ELBO VAE, the plain VQ-VAE with as many codes as SC-VAE has
# atoms and no anti-collapse option (it shows codebook collapse), the strong VQ-VAE (cosine lookup in 8-d,
# EMA, k-means init, dead-code restart) with 1024 codes, FSQ with 8 x 5 x 5 x 5 = 1000 codes, and the residual
# VQ (8 stages of 1024 codes) that reaches SC-VAE's own rates.
SMALL_SC = dict(n_atoms=256, n_iter=4, lam=0.3, max_active=33, refit=True, latent_weight=0.01, usage_weight=0.0,
                learn_dictionary=False, usage_floor=0.05, balance_step=1e-3)
_SMALL_BASELINES = {"ae": {}, "vae": dict(kl_weight=1.0), "vqvae": dict(codebook_size=256, commitment_weight=0.25),
                    "vqvae-strong": dict(codebook_size=1024, codebook_dim=8), "fsq": dict(levels=[8, 5, 5, 5]),
                    "rvq": dict(codebook_size=1024, num_quantizers=8)}

register_preset(
    "small-32", description="32 px -> 8x8 grid of 64-d latents, 256 atoms; trains on 2 CPU cores in minutes",
    backbone=dict(resolution=32, ch=32, ch_mult=[1, 2, 2], num_res_blocks=1, z_channels=64),
    scvae=dict(SMALL_SC), **_SMALL_BASELINES,
    train=dict(steps=1500, batch_size=32, lr=2e-3),
)
register_preset(
    "small-64", description="64 px -> 16x16 grid of 64-d latents, 256 atoms; CPU-sized",
    backbone=dict(resolution=64, ch=32, ch_mult=[1, 2, 2], num_res_blocks=1, z_channels=64),
    scvae=dict(SMALL_SC), **_SMALL_BASELINES,
    train=dict(steps=1500, batch_size=16, lr=2e-3),
)
register_preset(
    "tiny", description="16 px -> 4x4 grid of 16-d latents, 36 atoms; seconds per step anywhere (smoke tests)",
    backbone=dict(resolution=16, ch=8, ch_mult=[1, 2, 2], num_res_blocks=1, z_channels=16),
    scvae=dict(SMALL_SC, n_atoms=36, max_active=4), **{**_SMALL_BASELINES, "vqvae": dict(codebook_size=36),
                                                     "vqvae-strong": dict(codebook_size=64, codebook_dim=4),
                                                     "fsq": dict(levels=[4, 4, 4]),
                                                     "rvq": dict(codebook_size=64, num_quantizers=4)},
    train=dict(steps=100, batch_size=8, lr=2e-3),
)
# The small presets' recipe at the paper's size (not measured at 256 px on this project's machines), but
# with the paper's shrunk LISTA values: the refit was only measured at 32 px.
_PAPER_SC = dict(n_atoms=512, n_iter=16, lam=0.3, max_active=64, refit=False, latent_weight=0.01, usage_weight=0.0,
                 learn_dictionary=False, usage_floor=0.05, balance_step=1e-3)
_PAPER_TRAIN = dict(steps=200_000, batch_size=8, lr=4e-5, betas=[0.5, 0.9], val_every=5000, warmup_steps=1000)
for name, grid, ch_mult, attn in [
    ("paper-f8", 32, [1, 2, 2, 4], []),
    ("paper-f16", 16, [1, 1, 2, 2, 4], [16]),
    ("paper-f64", 4, [1, 1, 1, 2, 2, 4, 4], [16]),
    ("paper-f256", 1, [1, 1, 1, 2, 2, 2, 4, 4, 4], [16]),
]:
    register_preset(
        name, description=f"the paper's 256 px config with a {grid}x{grid} grid of 256-d latents, 512 atoms, T=16",
        backbone=dict(resolution=256, ch=128, ch_mult=ch_mult, num_res_blocks=2, attn_resolutions=attn, z_channels=256),
        scvae=dict(_PAPER_SC), ae={}, vae=dict(kl_weight=1.0), vqvae=dict(codebook_size=512),
        **{"vqvae-strong": dict(codebook_size=16384, codebook_dim=8), "fsq": dict(levels=[8, 8, 8, 5, 5, 5])},
        train=dict(_PAPER_TRAIN),
    )
