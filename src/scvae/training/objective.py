"""The training objective around a model's own loss: optional LPIPS and PatchGAN terms (the paper's and
taming's stage-1 objective), and a label-free invariance term, switched on by the training config.

    total = model loss (reconstruction + bottleneck terms) + lpips_weight * LPIPS
            + disc_weight * lambda_adaptive * (-mean D(x_hat))      once step >= disc_start
            + invariance_weight * VICReg(pooled projected latents of two views)   (:mod:`.invariance`)
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..errors import ScvaeError
from .adversarial import Adversary
from .invariance import InvarianceTerm
from ..evaluation.lpips import LPIPS


class Objective:
    """Built from a :class:`~scvae.config.TrainConfig`; with every weight 0 it is the model's loss alone."""

    def __init__(self, train_config, in_channels: int, resolution: int, device: torch.device,
                 wrap: Callable[[torch.nn.Module], torch.nn.Module] = lambda module: module, latent_dim: int = 0):
        """``wrap`` wraps the trained discriminator and projector (DDP under torchrun); ``latent_dim``: d of
        the model's latent, for the invariance term's projector."""
        t = train_config
        self.lpips_weight = float(t.lpips_weight)
        self.lpips = LPIPS(t.lpips_vgg, t.lpips_lin).to(device) if self.lpips_weight > 0 else None
        if self.lpips is not None and in_channels != 3:
            raise ScvaeError(f"lpips_weight > 0 needs RGB images; the model has {in_channels} channel(s)")
        self.adversary = None
        if t.disc_weight > 0:
            if resolution < 3 * 2 ** t.disc_layers:
                raise ScvaeError(f"disc_layers={t.disc_layers} needs a resolution >= {3 * 2 ** t.disc_layers}, "
                                 f"the model has {resolution}; lower disc_layers")
            self.adversary = Adversary(in_channels, t.disc_layers, t.disc_weight, t.disc_start, t.disc_lr or t.lr,
                                       tuple(t.betas), device, t.adam_eps, wrap)
        self.invariance = None
        if t.invariance_weight > 0:
            self.invariance = InvarianceTerm(latent_dim, t.invariance_weight, t.lr, tuple(t.betas), device, wrap)

    def loss(self, step: int, x: torch.Tensor, output: Any, model: torch.nn.Module,
             view_latent: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss to backpropagate for images x and the model's output, and extra values to log.
        ``view_latent`` (B/2, d, h, w): the latent of second views of the first B/2 images
        (``invariance_views=extra``); None: the second half of the batch are those views."""
        total, logs = output.loss, {}
        if self.lpips is not None:
            perceptual = self.lpips(output.reconstruction.float(), x.float()).mean()
            total = total + self.lpips_weight * perceptual
            logs["lpips"] = perceptual.detach()
        if self.adversary is not None and self.adversary.active(step):
            term, adv_logs = self.adversary.generator_loss(total, output.reconstruction, model.decoder.out[-1].weight)
            total = total + term
            logs.update(adv_logs)
        if self.invariance is not None:
            latent = output.latent
            if view_latent is not None:
                latent = torch.cat([latent[:len(view_latent)], view_latent.to(latent.dtype)])
            term, inv_logs = self.invariance.loss(latent)
            total = total + term
            logs.update(inv_logs)
        return total, logs

    def after_step(self, step: int, x: torch.Tensor, output: Any) -> dict[str, torch.Tensor]:
        """After the autoencoder's optimizer step: the projector's update, and one discriminator update (from
        ``disc_start`` on)."""
        if self.invariance is not None:
            self.invariance.step()
        if self.adversary is None or not self.adversary.active(step):
            return {}
        return self.adversary.discriminator_step(x, output.reconstruction)

    def state_dict(self) -> dict:
        state = {"adversary": self.adversary.state_dict()} if self.adversary is not None else {}
        if self.invariance is not None:
            state["invariance"] = self.invariance.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        if self.invariance is not None:
            if "invariance" not in state:
                raise KeyError("the checkpoint has no projector state (invariance_weight was 0 when it was written)")
            self.invariance.load_state_dict(state["invariance"])
        if self.adversary is not None:
            if "adversary" not in state:
                raise KeyError("the checkpoint has no discriminator state (disc_weight was 0 when it was written)")
            self.adversary.load_state_dict(state["adversary"])
