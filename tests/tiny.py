"""The tiny test models, defined once: a 16 px backbone with an 8 x 8 grid of 16-d latents (SC-VAE: 36 atoms)."""
TINY_BACKBONE = dict(resolution=16, ch=8, ch_mult=[1, 2], z_channels=16)
TINY_SCVAE = dict(TINY_BACKBONE, n_atoms=36)
