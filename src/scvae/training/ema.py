"""An exponential moving average of the model's weights, the copy that is validated and saved as best.

After every optimizer step: w_ema <- decay * w_ema + (1 - decay) * w. Buffers (usage statistics, EMA
codebooks) are copied as they are: they are already running averages of their own.

Hand-written rather than ``torch.optim.swa_utils.AveragedModel``: that one would average the buffers or leave
them stale, and its state dict (``module.*``, ``n_averaged``) would not load the EMA earlier checkpoints hold.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class WeightEMA:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for averaged, current in zip(self.model.parameters(), model.parameters()):
            averaged.lerp_(current.detach(), 1.0 - self.decay)
        for averaged, current in zip(self.model.buffers(), model.buffers()):
            averaged.copy_(current)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)
