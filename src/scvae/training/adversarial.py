"""The adversarial half of taming's stage-1 objective: a PatchGAN discriminator with the hinge loss and
the adaptive weight that balances it against the reconstruction loss at the decoder's last layer.

Unlike the official SC-VAE code, whose discriminator optimizer is created but never stepped, the
discriminator here is really updated (:meth:`Adversary.discriminator_step`), and both optimizers are
checkpointed. Under torchrun the discriminator is wrapped in DDP, its BatchNorm uses the global batch's
statistics and the adaptive weight reads globally averaged gradients, so N ranks train like one process.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..collective import all_reduce_sum, is_distributed


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch under torch.distributed, on any
    backend (``nn.SyncBatchNorm`` needs GPUs); ranks must hold equal shares. Gradients flow across ranks
    through a differentiable all-reduce. Outside torch.distributed, or in eval mode, it is BatchNorm2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        count = x.numel() // x.shape[1] * dist.get_world_size()
        mean = all_reduce(x.sum((0, 2, 3))) / count
        centred = x - mean.view(1, -1, 1, 1)
        var = all_reduce(centred.square().sum((0, 2, 3))) / count
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * count / (count - 1), self.momentum)
        scale = self.weight * torch.rsqrt(var + self.eps)
        return centred * scale.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class PatchDiscriminator(nn.Module):
    """pix2pix / taming ``NLayerDiscriminator``: (B, C, H, W) -> patch logits (B, 1, H', W')."""

    def __init__(self, in_channels: int = 3, width: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(width * prev, width * mult, 4, stride, 1, bias=False), GlobalBatchNorm2d(width * mult),
                       nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(width * mult, 1, 4, 1, 1))
        self.main = nn.Sequential(*layers)
        for m in self.modules():  # taming's weights_init
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def adaptive_weight(nll: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor, max_weight: float = 1e4
                    ) -> torch.Tensor:
    """taming's lambda = ||grad_last nll|| / (||grad_last g_loss|| + 1e-4), clamped to [0, max_weight], detached.
    Under torch.distributed both gradients are averaged over ranks first: those of the global batch."""
    nll_grad = _rank_mean(torch.autograd.grad(nll, last_layer, retain_graph=True)[0])
    g_grad = _rank_mean(torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0])
    return (nll_grad.norm() / (g_grad.norm() + 1e-4)).clamp(0.0, max_weight).detach()


def _rank_mean(tensor: torch.Tensor) -> torch.Tensor:
    return all_reduce_sum(tensor) / dist.get_world_size() if is_distributed() else tensor


class _DiscriminatorLoss(nn.Module):
    """The hinge loss of real images against reconstructions in one forward, so that DDP sees one forward
    per backward although the discriminator runs twice (separately, as in taming: BatchNorm statistics
    are not mixed)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits_real, logits_fake = self.net(real), self.net(fake)
        return hinge_d_loss(logits_real, logits_fake), logits_real, logits_fake


class Adversary:
    """Discriminator, its Adam optimizer and the schedule: nothing adversarial before ``start`` steps.

    ``generator_loss`` gives the term added to the autoencoder's loss; ``discriminator_step`` updates the
    discriminator on real images against (detached) reconstructions.
    """

    def __init__(self, in_channels: int, n_layers: int, weight: float, start: int, lr: float,
                 betas: tuple[float, float], device: torch.device, eps: float = 1e-8,
                 wrap: Callable[[nn.Module], nn.Module] = lambda module: module):
        self.net = PatchDiscriminator(in_channels, n_layers=n_layers).to(device)
        self.loss = wrap(_DiscriminatorLoss(self.net))  # DDP under torchrun: gradients averaged over ranks
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr, betas=betas, eps=eps)
        self.weight, self.start = float(weight), int(start)

    def active(self, step: int) -> bool:
        return step >= self.start

    def generator_loss(self, nll: torch.Tensor, reconstruction: torch.Tensor, last_layer: torch.Tensor
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        g_loss = -self.net(reconstruction).mean()
        lam = adaptive_weight(nll, g_loss, last_layer)
        return self.weight * lam * g_loss, {"g_loss": g_loss.detach(), "d_weight": lam}

    def discriminator_step(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        loss, logits_real, logits_fake = self.loss(real.detach(), fake.detach())
        loss.backward()
        self.optimizer.step()
        return {"d_loss": loss.detach(), "logits_real": logits_real.detach().mean(),
                "logits_fake": logits_fake.detach().mean()}

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
