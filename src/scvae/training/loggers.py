"""Where training metrics go: always ``metrics.jsonl`` in the run directory, plus the trackers named by the
``loggers`` setting (TensorBoard, Weights & Biases, MLflow), each behind the same two-method interface.

The trackers are optional extras (``pip install "scvae[wandb]"`` / ``"scvae[mlflow]"`` /
``"scvae[tensorboard]"``). ``tensorboard``, the default, writes when TensorBoard is installed and is
skipped otherwise; ``wandb`` or ``mlflow`` named but not installed is one error line before training.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from ..errors import ScvaeError
from ..files import write_text_atomic

METRICS_FILE = "metrics.jsonl"


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``run_dir``'s metrics.jsonl ([] without one); lines that do not parse (a killed writer's
    torn last line) are left out."""
    path = Path(run_dir) / METRICS_FILE
    rows = []
    for line in path.read_text(errors="replace").splitlines() if path.is_file() else []:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    return rows


class Tracker(Protocol):
    def log(self, split: str, step: int, values: dict[str, float]) -> None: ...

    def close(self) -> None: ...


class TensorBoardTracker:
    def __init__(self, run_dir: Path, config: dict[str, Any]):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def log(self, split: str, step: int, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.writer.add_scalar(f"{split}/{k}", v, step)

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    """One W&B run per run directory (its id is the directory's name, so a resumed run continues it)."""

    def __init__(self, run_dir: Path, config: dict[str, Any]):
        import wandb

        self.run = wandb.init(project="scvae", name=run_dir.name, id=run_dir.resolve().name, resume="allow",
                              dir=str(run_dir), config=config)

    def log(self, split: str, step: int, values: dict[str, float]) -> None:
        self.run.log({f"{split}/{k}": v for k, v in values.items()}, step=step)

    def close(self) -> None:
        self.run.finish()


class MLflowTracker:
    """An MLflow run in the configured tracking store (``MLFLOW_TRACKING_URI``; default ``RUN_DIR/mlruns``)."""

    def __init__(self, run_dir: Path, config: dict[str, Any]):
        import os

        import mlflow

        self.mlflow = mlflow
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            mlflow.set_tracking_uri((run_dir / "mlruns").resolve().as_uri())
        mlflow.start_run(run_name=run_dir.name)
        flat = {f"{section}.{k}": v for section, values in config.items() if isinstance(values, dict)
                for k, v in values.items()}
        mlflow.log_params({k: str(v)[:250] for k, v in flat.items()})

    def log(self, split: str, step: int, values: dict[str, float]) -> None:
        self.mlflow.log_metrics({f"{split}/{k}": v for k, v in values.items()}, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


TRACKERS = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker, "mlflow": MLflowTracker}  # name = package


def check_trackers(names: list[str]) -> None:
    """Refuse unknown or uninstalled trackers before anything is written."""
    for name in names:
        if name not in TRACKERS:
            raise ScvaeError(f"loggers: unknown tracker {name!r}; choose from {', '.join(TRACKERS)}")
        if not _installed(name) and name != "tensorboard":
            raise ScvaeError(f"loggers: {name} is not installed (pip install {name})")


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


class MetricsLogger:
    """Appends JSON lines and forwards every row to the trackers. On resume, rows logged after the
    checkpoint's step (by the run that was interrupted) are dropped, so no step appears twice."""

    def __init__(self, run_dir: Path, enabled: bool, resumed_at: int | None = None, run=None):
        self.enabled, self.path, self.trackers = enabled, run_dir / METRICS_FILE, []
        if enabled and resumed_at is not None and self.path.is_file():
            kept = [row for row in read_metrics(run_dir) if row["step"] <= resumed_at]
            write_text_atomic(self.path, "".join(json.dumps(row) + "\n" for row in kept))
        if enabled and run is not None:
            config = run.to_dict()
            self.trackers = [TRACKERS[name](run_dir, config) for name in run.train.loggers if _installed(name)]

    def log(self, split: str, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"split": split, "step": step, **values}) + "\n")
        for tracker in self.trackers:
            tracker.log(split, step, values)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()
