"""Training: the shared loop, stateless batch sampling, atomic checkpoints, torchrun support."""
from .checkpoint import save_checkpoint
from .run_dir import load_model, resolve_model_dir
from .trainer import TrainResult, build_datasets, lr_at, train

__all__ = ["load_model", "resolve_model_dir", "save_checkpoint", "TrainResult", "build_datasets", "lr_at", "train"]
