"""Fitting the prior to a model's training codes, measuring its held-out bits, and the prior's own files.

A saved prior is a folder, hub-style: ``config.json`` (the layout, the network's size, the symbol step, the
autoencoder's family and where it was loaded from, the training state) and ``prior.safetensors``. While it
trains, ``checkpoint.safetensors`` holds the network and optimizer state, so a stopped run resumes.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..coding.entropy_model import RAW_BITS
from ..errors import ScvaeError
from ..presets import PRIOR_DEFAULTS
from .layout import Entries, EntryLayout
from .network import PriorConfig, PriorNetwork

CONFIG, WEIGHTS, CHECKPOINT = "config.json", "prior.safetensors", "checkpoint.safetensors"
FORMAT = "scvae-prior-1"


@dataclass(frozen=True)
class PriorTraining:
    """Optimisation settings, the same for every family: AdamW at ``lr`` with a cosine decay to a tenth,
    ``batch_size`` images a step."""

    steps: int = PRIOR_DEFAULTS["steps"]
    batch_size: int = PRIOR_DEFAULTS["batch_size"]
    lr: float = PRIOR_DEFAULTS["lr"]
    weight_decay: float = 0.01
    seed: int = 0
    save_every: int = PRIOR_DEFAULTS["save_every"]  # steps between checkpoints (when a checkpoint callback is given)


@dataclass
class LearnedPrior:
    """A trained prior: the network (its ``layout`` inside), the ``step`` the symbols were quantised with
    (None for discrete codes), the autoencoder's ``model_type`` and ``source`` (the run it was trained for),
    ``grid`` (h, w) of the training codes, and ``info`` (steps done, held-out bits)."""

    network: PriorNetwork
    step: float | None
    model_type: str
    source: str
    grid: tuple[int, int]
    info: dict = field(default_factory=dict)

    @property
    def layout(self) -> EntryLayout:
        return self.network.layout

    def bits(self, symbols: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """Symbols (N, C, h, w) -> each image's negative log-likelihood in bits (N,), an escaped value
        (outside the training alphabet) counted with its ``RAW_BITS`` raw bits."""
        self.network.eval()
        out = []
        with torch.no_grad():
            for chunk in symbols.split(batch):
                entries = self.layout.pack(chunk)
                out.append(self.network(entries) + RAW_BITS * escapes(entries, self.layout))
        return torch.cat(out)

    def save(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.network.state_dict().items()}, folder / WEIGHTS)
        (folder / CONFIG).write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return folder

    def to_dict(self) -> dict:
        """What config.json holds: the layout, the network, the step, the family, the source run, the scores."""
        return {"format": FORMAT, "model_type": self.model_type, "source": self.source, "step": self.step,
                "grid": list(self.grid), "layout": self.layout.to_dict(), "network": self.network.config.to_dict(),
                "info": self.info}

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "LearnedPrior":
        folder = Path(folder)
        if not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
            raise ScvaeError(f"{folder}: not a trained prior (needs {CONFIG} and {WEIGHTS}; "
                             f"train one with scvae prior train)")
        try:
            config = json.loads((folder / CONFIG).read_text())
            if config.get("format") != FORMAT:
                raise ValueError(f"format {config.get('format')!r}, expected {FORMAT!r}")
            # a prior saved before the binding option read its entries as sums
            network_config = PriorConfig(**{"binding": "sum", **config["network"]})
            network = PriorNetwork(EntryLayout.from_dict(config["layout"]), network_config)
            network.load_state_dict(load_file(folder / WEIGHTS))
        except (ValueError, KeyError, TypeError, RuntimeError, OSError) as exc:
            raise ScvaeError(f"{folder}: unreadable prior ({str(exc).splitlines()[0]})") from None
        return cls(network.eval(), config["step"], config["model_type"], config["source"], tuple(config["grid"]),
                   config.get("info", {}))


def escapes(entries: Entries, layout: EntryLayout) -> torch.Tensor:
    """How many used entries of each image (B,) carry the escape value."""
    used = torch.arange(entries.values.shape[-1]) < entries.lengths[..., None]
    return ((entries.values == layout.escape) & used).sum((1, 2)).float()


def train_network(network: PriorNetwork, train: Entries, settings: PriorTraining = PriorTraining(), *,
                  resume: dict[str, torch.Tensor] | None = None, progress: bool = True,
                  checkpoint: Callable[[int, dict[str, torch.Tensor]], None] | None = None
                  ) -> list[tuple[int, float]]:
    """Fit ``network`` to the training entries; returns the history [(step, mean bits per image of the
    step's batch)]. ``checkpoint`` is called every ``settings.save_every`` steps and at the end with the step
    and a flat dict of tensors (network, optimizer, random state); ``resume``: such a state to continue from."""
    generator = torch.Generator().manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(network.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    start = 0 if resume is None else _restore(resume, network, optimizer, generator)
    schedule = torch.optim.lr_scheduler.LambdaLR(  # a cosine from lr to lr / 10, continued where it stopped
        optimizer, lambda s: 0.1 + 0.45 * (1 + math.cos(math.pi * min(start + s, settings.steps) / settings.steps)))
    history = []
    network.train()
    bar = tqdm(range(start, settings.steps), desc="training the prior", unit="step", disable=not progress,
               initial=start, total=settings.steps)
    for step in bar:
        rows = torch.randint(len(train), (settings.batch_size,), generator=generator)
        bits = network(train.index(rows)).mean()
        value = float(bits.detach())
        optimizer.zero_grad(set_to_none=True)
        (bits / math.prod(train.grid)).backward()  # bits per position: a scale-free loss
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        history.append((step + 1, value))
        bar.set_postfix(bits_per_image=f"{value:.0f}")
        if checkpoint is not None and ((step + 1) % settings.save_every == 0 or step + 1 == settings.steps):
            checkpoint(step + 1, _state(network, optimizer, step + 1, generator))
    network.eval()
    return history


def _state(network: PriorNetwork, optimizer: torch.optim.Optimizer, step: int, generator: torch.Generator
           ) -> dict[str, torch.Tensor]:
    """A flat dict of tensors (safetensors stores nothing else): the network, Adam's moments, the step."""
    state = {f"network.{k}": v.detach().clone() for k, v in network.state_dict().items()}
    for i, p in enumerate(optimizer.param_groups[0]["params"]):
        for name, value in optimizer.state.get(p, {}).items():
            state[f"optimizer.{i}.{name}"] = torch.as_tensor(value).clone()
    state["step"] = torch.tensor(step)
    state["generator"] = generator.get_state()
    return state


def _restore(state: dict[str, torch.Tensor], network: PriorNetwork, optimizer: torch.optim.Optimizer,
             generator: torch.Generator) -> int:
    network.load_state_dict({k.removeprefix("network."): v for k, v in state.items() if k.startswith("network.")})
    for i, p in enumerate(optimizer.param_groups[0]["params"]):
        moments = {k.split(".")[-1]: v for k, v in state.items() if k.startswith(f"optimizer.{i}.")}
        if moments:
            optimizer.state[p] = moments
    generator.set_state(state["generator"])
    return int(state["step"])


def save_checkpoint(folder: str | os.PathLike, state: dict[str, torch.Tensor], meta: dict) -> None:
    """Write the training state atomically (a stopped write leaves the previous checkpoint whole)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / (CHECKPOINT + ".partial")
    save_file(state, partial, metadata={"meta": json.dumps(meta)})
    os.replace(partial, folder / CHECKPOINT)


def load_checkpoint(folder: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict] | None:
    """The state and metadata :func:`save_checkpoint` wrote, or None if there is none."""
    from safetensors import safe_open

    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        return None
    with safe_open(path, "pt") as f:
        meta = json.loads((f.metadata() or {}).get("meta", "{}"))
    return load_file(path), meta
