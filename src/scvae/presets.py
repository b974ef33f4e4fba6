"""Named presets, kept in one registry: backbone + bottleneck settings + training defaults.

A preset's ``backbone`` is shared by every model type, so SC-VAE and its baselines are compared on
the same encoder/decoder; each model type adds its own bottleneck section.
"""
from __future__ import annotations

from typing import Any

from .errors import ScvaeError

PRESETS: dict[str, dict[str, Any]] = {}


def register_preset(name: str, *, description: str, backbone: dict, train: dict | None = None,
                    **model_sections: dict) -> None:
    PRESETS[name] = {"description": description, "backbone": backbone, "train": train or {}, **model_sections}


def get_preset(name: str) -> dict[str, Any]:
    try:
        return PRESETS[name]
    except KeyError:
        raise ScvaeError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None


# Sparsity: at most 12 of 121 atoms per code (9.9 %); usage balance keeps every atom in play (see docs/design.md).
# Baselines on the same backbone: the plain ELBO VAE (beta 1 on a per-pixel KL) and a VQ-VAE with as
# many codes as SC-VAE has atoms, anti-collapse options off (set model.ema=true etc. to turn them on).
_SMALL_VAE = dict(kl_weight=1.0)
_SMALL_VQ = dict(codebook_size=121, commitment_weight=0.25)
_SMALL_SC = dict(n_atoms=121, n_iter=16, lam=0.3, max_active=12, latent_weight=0.1, usage_weight=1.0,
                 usage_temperature=0.25)

register_preset(
    "small-32", description="32 px -> 8x8 grid of 16-d latents, 121 DCT atoms; trains on 2 CPU cores in minutes",
    backbone=dict(resolution=32, ch=32, ch_mult=[1, 2, 2], num_res_blocks=1, z_channels=16),
    scvae=dict(_SMALL_SC), vae=dict(_SMALL_VAE), vqvae=dict(_SMALL_VQ),
    train=dict(steps=1500, batch_size=32, lr=2e-3, val_every=250),
)
register_preset(
    "small-64", description="64 px -> 16x16 grid of 16-d latents, 121 DCT atoms; CPU-sized",
    backbone=dict(resolution=64, ch=32, ch_mult=[1, 2, 2], num_res_blocks=1, z_channels=16),
    scvae=dict(_SMALL_SC), vae=dict(_SMALL_VAE), vqvae=dict(_SMALL_VQ),
    train=dict(steps=1500, batch_size=16, lr=2e-3, val_every=250),
)
_PAPER_SC = dict(n_atoms=512, n_iter=16, lam=0.3, max_active=64, latent_weight=0.1, usage_weight=1.0,
                 usage_temperature=0.25)
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
        scvae=dict(_PAPER_SC), vae=dict(kl_weight=1.0), vqvae=dict(codebook_size=512), train=dict(_PAPER_TRAIN),
    )
