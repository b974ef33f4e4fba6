"""The training loop, shared by every model type: Adam, warmup + cosine LR, validation, checkpoints.

Runs on one device, or under ``torchrun`` with torch.distributed (DDP; each rank draws its own share
of every global batch; rank 0 validates and writes).
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import RunConfig, build_model, save_run_config
from ..data import CropDataset, builtin_datasets, folder_datasets, save_grid
from ..data.datasets import mask_cells, paired_views, second_views, tile_mosaic
from ..data.streaming import LazyImages, default_workers, step_loader
from ..errors import ScvaeError
from ..files import write_text_atomic
from ..evaluation import evaluate_reconstruction, psnr_per_image, to_unit
from .checkpoint import load_trainer_state, save_checkpoint
from .compiling import compile_model
from .distributed import setup_distributed
from .ema import WeightEMA
from .loggers import METRICS_FILE, MetricsLogger, check_trackers
from .objective import Objective
from .run_dir import (CONFIG_FILE, GRID_FILE, RUN_INFO_FILE, is_unstarted, prepare_run_dir, recover_replaced_runs,
                      settle_replaced_run)
from .sampler import StepSampler, seed_for

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    best_psnr: float
    last_val: dict[str, float]  # empty on ranks other than 0, which do not validate
    seconds_per_step: float
    rank: int = 0


def lr_at(step: int, run: RunConfig, schedule_steps: int | None = None) -> float:
    """Linear warmup to ``lr`` then cosine decay to ``lr * min_lr_ratio`` at ``schedule_steps`` (default
    ``steps``), constant after it. A run extended by ``--resume --steps N`` keeps the schedule its first
    start planned, so the learning rate never jumps back up: the added steps run at the floor. A pure function
    of the step rather than a ``torch.optim.lr_scheduler``: resuming needs no scheduler state, only the step."""
    t = run.train
    total = schedule_steps or t.steps
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    progress = min(1.0, (step - t.warmup_steps) / max(1, total - t.warmup_steps))
    return t.lr * (t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def build_datasets(run: RunConfig) -> tuple[CropDataset, CropDataset]:
    t, m = run.train, run.model
    channels = int(m.get("in_channels", 3))
    if t.data is None:
        return builtin_datasets(int(m["resolution"]), channels, t.builtin_scale, t.flip)
    return folder_datasets(t.data, int(m["resolution"]), channels, t.val_data, t.val_ratio, t.flip, scale=t.data_scale,
                           cache=t.data_cache, split_group=t.split_group)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ScvaeError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


def train(run: RunConfig, out: str | os.PathLike, *, resume: bool = False, overwrite: bool = False,
          progress: bool = False, datasets: tuple[CropDataset, CropDataset] | None = None,
          command: list[str] | None = None) -> TrainResult:
    """Train ``run`` into the run directory ``out``; returns the final step and validation metrics.
    ``command`` (default ``sys.argv``) is recorded with versions and date in ``run_info.json``."""
    out = Path(out)
    t = run.train
    if t.num_threads > 0:
        torch.set_num_threads(t.num_threads)
    torch.manual_seed(t.seed), random.seed(t.seed), np.random.seed(t.seed % 2**32)
    dist = setup_distributed()  # before the model: vector-quantize-pytorch syncs its codebooks when it sees DDP
    model = build_model(run)  # before any output, so an invalid model config leaves no run directory behind
    device = pick_device(t.device) if not dist.enabled else dist.device
    model = model.to(device)
    train_set, val_set = datasets or build_datasets(run)  # every input is checked before the run dir is touched
    # reads LPIPS weights, if any; the latent's channels size the invariance term's projector
    objective = Objective(t, model.in_channels, model.resolution, device, dist.wrap, int(model.config["z_channels"]))
    check_trackers(t.loggers)
    if dist.is_main:
        recover_replaced_runs(out)
    if resume and is_unstarted(out):
        log.warning("%s: no checkpoint was saved yet, so the run starts again from step 0", out)
        resume = False
    aside = prepare_run_dir(out, resume, overwrite) if dist.is_main else None
    previous = _stop_on_sigterm()
    try:
        return _train_in(run, out, model, objective, dist, device, train_set, val_set, resume, progress, aside,
                         command)
    except BaseException:
        settle_replaced_run(out, aside, started=False)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _stop_on_sigterm():
    """SIGTERM (schedulers, ``docker stop``) stops training like Ctrl-C: checkpoint, one line, exit 2."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def _restore(out: Path, model, optimizer, objective: Objective, ema: WeightEMA | None,
             t) -> tuple[int, float, int]:
    """Load ``checkpoints/last`` into the model, optimizer, objective and EMA, and the RNG; returns the step it
    reached, the best held-out PSNR so far and the schedule's length."""
    from ..models import AutoencoderModel

    last = out / "checkpoints" / "last"
    state = load_trainer_state(last)
    saved = AutoencoderModel.from_pretrained(last)
    try:
        model.load_state_dict(saved.state_dict())
        optimizer.load_state_dict(state["optimizer"])
        objective.load_state_dict(state.get("objective", {}))
        if ema is not None:
            ema.load_state_dict(state["ema"] if "ema" in state else model.state_dict())
        start, best = int(state["step"]), float(state["best_psnr"])
        schedule = int(state.get("schedule_steps", t.steps))
        torch.set_rng_state(state["rng"])
        if "cuda_rng" in state and torch.cuda.is_available():  # a CPU resume of a GPU run ignores it
            torch.cuda.set_rng_state_all(list(state["cuda_rng"]))
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise ScvaeError(f"{last}: does not match {CONFIG_FILE} or is damaged "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if start >= t.steps:
        raise ScvaeError(f"{out}: finished at step {start} of {t.steps}; to train further: "
                         f"scvae train --out {out} --resume --steps N (N > {start})")
    return start, best, schedule


@dataclass
class _Checkpointer:
    """Writes ``checkpoints/last`` (the model) and ``checkpoints/best`` (what validation scores) with the
    trainer state; the first write settles a run that ``--overwrite`` moved aside."""

    out: Path
    model: torch.nn.Module
    evaluated: torch.nn.Module
    optimizer: torch.optim.Optimizer
    objective: Objective
    ema: WeightEMA | None
    aside: Path | None

    def save(self, name: str, step: int, best: float, schedule: int) -> None:
        state = {"optimizer": self.optimizer.state_dict(), "step": step, "best_psnr": best,
                 "rng": torch.get_rng_state(), "schedule_steps": schedule, "objective": self.objective.state_dict()}
        if torch.cuda.is_available():  # exact GPU resume needs each device's generator too
            state["cuda_rng"] = torch.stack(torch.cuda.get_rng_state_all())
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        save_checkpoint(self.out / "checkpoints" / name, self.evaluated if name == "best" else self.model, state)
        if self.aside is not None:  # the new run can now be resumed: the run it replaced can go
            settle_replaced_run(self.out, self.aside, started=True)
            self.aside = None


def _optimizer_step(step: int, t, ddp_model, model, objective: Objective, optimizer, batches, device,
                    autocast, dist) -> tuple[Any, torch.Tensor, torch.Tensor, dict]:
    """One optimizer step over ``grad_accum`` micro-batches; returns the last micro-batch's output, input,
    loss and the objective's extra scalars."""
    if dist.rank > 0:  # own noise (VAE sampling) per rank, a function of (seed, step, rank) so resume is exact
        torch.manual_seed(seed_for(t.seed, step, dist.rank))
    optimizer.zero_grad(set_to_none=True)
    for micro in range(t.grad_accum):
        x = next(batches)
        if t.mosaic > 1:
            x = tile_mosaic(x, t.mosaic, torch.Generator().manual_seed(seed_for(t.seed, step, micro, dist.rank)))
        views = None
        if t.invariance_weight > 0:
            draws = torch.Generator().manual_seed(seed_for(t.seed, step, micro, dist.rank, 2))
            if t.invariance_views == "replace":
                x = paired_views(x, draws)
            else:  # the whole batch is reconstructed; second views of its first half are only encoded
                views = second_views(x[: len(x) // 2], draws).to(device)
        x = x.to(device)
        inputs = x
        if t.mask_ratio > 0:
            masks = torch.Generator().manual_seed(seed_for(t.seed, step, micro, dist.rank, 1))
            inputs = mask_cells(x, t.mask_ratio, model.downsampling_factor, masks)
        last = micro == t.grad_accum - 1
        with contextlib.nullcontext() if last or not dist.enabled else ddp_model.no_sync():
            with autocast:  # DDP all-reduces gradients only in the last micro-batch's backward
                output = ddp_model(inputs)
                view_latent = model.latent(views) if views is not None else None
            loss, extra = objective.loss(step, x, output, model, view_latent)
            if not torch.isfinite(loss):
                raise ScvaeError(f"loss became {loss.item()} at step {step}: training diverged "
                                 f"(lower lr or raise grad_clip); the last checkpoint is kept")
            (loss / t.grad_accum).backward()
    if t.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
    optimizer.step()
    return output, x, loss, extra


def _train_in(run: RunConfig, out: Path, model, objective: Objective, dist, device: torch.device,
              train_set: CropDataset, val_set: CropDataset, resume: bool, progress: bool,
              aside: Path | None, command: list[str] | None) -> TrainResult:
    t = run.train
    dist.barrier()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=t.lr,
                                 betas=tuple(t.betas), eps=t.adam_eps, weight_decay=t.weight_decay)
    ema = WeightEMA(model, t.ema_decay) if t.ema_decay > 0 else None
    evaluated = ema.model if ema is not None else model  # what validation scores and "best" keeps
    start, best, schedule = _restore(out, model, optimizer, objective, ema, t) if resume else (0, -math.inf, t.steps)
    if dist.is_main:
        save_run_config(run, out / CONFIG_FILE)
        _record_start(out, start, command)
    ddp_model = dist.wrap(model)
    if t.compile:
        ddp_model = compile_model(ddp_model, t.compile_backend)
    sampler = StepSampler(len(train_set), t.batch_size, t.seed, dist.rank, dist.world_size)
    workers = t.num_workers if t.num_workers >= 0 else default_workers(isinstance(train_set.images, LazyImages))
    # micro-step u = step * grad_accum + m draws micro-batch m of step ``step``; batches arrive in order
    batches = iter(step_loader(train_set, sampler, start * t.grad_accum, t.steps * t.grad_accum, workers))
    logger = MetricsLogger(out, dist.is_main, start if resume else None, run)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=t.precision == "bf16")
    checkpoints = _Checkpointer(out, model, evaluated, optimizer, objective, ema, aside)
    last_val: dict[str, float] = {}
    if dist.is_main:
        log.info("training %s (%s preset) in %s: steps %d to %d, %d training images (a random %d px crop of one "
                 "per draw) / %d held-out images (their central %d px crop), %s%s", run.model_type,
                 run.preset, out, start, t.steps, len(train_set), train_set.size, len(val_set), val_set.size, device,
                 f", {dist.world_size} processes" if dist.enabled else "")
    bar = tqdm(total=t.steps, initial=start, desc=f"train {run.model_type}", unit="step",
               disable=not (progress and dist.is_main), dynamic_ncols=True)
    completed, t0, timed = start, time.perf_counter(), 0  # completed: steps whose update is in the weights
    try:
        model.train()
        for step in range(start, t.steps):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, run, schedule)
            output, x, loss, extra = _optimizer_step(step, t, ddp_model, model, objective, optimizer, batches,
                                                     device, autocast, dist)
            if ema is not None:
                ema.update(model)
            step_stats = {k: float(v) for k, v in
                          {**model.after_step(output), **extra, **objective.after_step(step, x, output)}.items()}
            completed = done = step + 1
            timed += 1
            bar.update(1)
            if done % t.log_every == 0 or done == t.steps:
                values = {**_train_values(output, x, loss), **step_stats,
                          "sec_per_step": (time.perf_counter() - t0) / timed}
                bar.set_postfix({k: f"{v:.3g}" for k, v in values.items() if k in ("loss", "psnr", "active")})
                logger.log("train", done, {**values, "lr": lr_at(step, run, schedule)})
            if dist.is_main and (done % t.validation_interval == 0 or done == t.steps):
                report = evaluate_reconstruction(evaluated, val_set, 64, t.val_images, device)
                last_val = report.summary()
                logger.log("val", done, last_val)
                log.info("step %d/%d: held-out PSNR %.2f dB, SSIM %.3f", done, t.steps, report.psnr,
                         last_val.get("ssim", float("nan")))
                _save_val_grid(evaluated, val_set, out / GRID_FILE, device)
                if report.psnr > best:
                    best = report.psnr
                    checkpoints.save("best", done, best, schedule)
            if dist.is_main and (done % t.save_every == 0 or done == t.steps):
                checkpoints.save("last", done, best, schedule)
    except KeyboardInterrupt:
        if dist.is_main and completed > start:
            checkpoints.save("last", completed, best, schedule)
        raise ScvaeError(f"interrupted at step {completed}; continue with: scvae train --out {out} --resume") from None
    finally:
        bar.close()
        logger.close()
        dist.close()
    seconds = (time.perf_counter() - t0) / max(1, timed)
    return TrainResult(out, completed, best, last_val, seconds, dist.rank)


def _record_start(out: Path, step: int, command: list[str] | None) -> None:
    """Append this start (command line, versions, date, starting step) to ``run_info.json``."""
    import platform
    import sys
    from datetime import datetime, timezone

    from ..evaluation.report import package_versions

    path = out / RUN_INFO_FILE
    try:
        starts = json.loads(path.read_text())["starts"] if path.is_file() else []
    except (ValueError, KeyError, TypeError):
        starts = []  # a damaged record is replaced, never a reason to stop training
    starts.append({"command": command or [Path(sys.argv[0]).name, *sys.argv[1:]], "step": step,
                   "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "versions": package_versions(), "host": platform.node()})
    write_text_atomic(path, json.dumps({"starts": starts}, indent=2) + "\n")


def _train_values(output: Any, x: torch.Tensor, loss: torch.Tensor) -> dict[str, float]:
    values = {"loss": float(loss.detach())}
    values.update({k: float(v.detach()) for k, v in output.losses.items()})
    values["psnr"] = float(psnr_per_image(to_unit(output.reconstruction.detach()), to_unit(x)).mean())
    codes = getattr(output, "codes", None)
    if codes is not None:
        values["active"] = float((codes.detach() != 0).float().mean())
    return values


@torch.no_grad()
def _save_val_grid(model: torch.nn.Module, val_set: CropDataset, path: Path, device: torch.device,
                   n: int = 8) -> None:
    """Inputs (top row) over reconstructions (bottom row) of the first ``n`` validation images."""
    x = val_set.batch(list(range(min(n, len(val_set))))).to(device)
    was = model.training
    model.eval()
    y = model(x).reconstruction
    model.train(was)
    upscale = max(1, 128 // x.shape[-1])
    save_grid([x, y], path, nrow=len(x), upscale=upscale)
