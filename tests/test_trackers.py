"""Metrics go to metrics.jsonl and to the trackers named by ``loggers`` (W&B and MLflow replaced here by
fakes that record their calls: nothing reaches the network)."""
import importlib.machinery
import json
import sys
import types

import pytest

from scvae.cli import main

from .conftest import TINY


def _fake(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    module.__dict__.update(attrs)
    return module


@pytest.fixture
def fakes(monkeypatch):
    calls = {"wandb": [], "mlflow": []}

    class Run:
        def log(self, values, step):
            calls["wandb"].append(("log", step, values))

        def finish(self):
            calls["wandb"].append(("finish",))

    def init(**kwargs):
        calls["wandb"].append(("init", kwargs))
        return Run()

    mlflow = _fake("mlflow", set_tracking_uri=lambda uri: calls["mlflow"].append(("uri", uri)),
                   start_run=lambda run_name: calls["mlflow"].append(("start", run_name)),
                   log_params=lambda params: calls["mlflow"].append(("params", params)),
                   log_metrics=lambda values, step: calls["mlflow"].append(("metrics", step, values)),
                   end_run=lambda: calls["mlflow"].append(("end",)))
    monkeypatch.setitem(sys.modules, "wandb", _fake("wandb", init=init))
    monkeypatch.setitem(sys.modules, "mlflow", mlflow)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return calls


def test_wandb_and_mlflow_receive_what_metrics_jsonl_holds(fakes, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--no-progress", *TINY, "steps=2", "loggers=[wandb,mlflow]"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    wandb_logged = [c for c in fakes["wandb"] if c[0] == "log"]
    assert len(wandb_logged) == len(rows) and wandb_logged[-1][1] == rows[-1]["step"]
    assert fakes["wandb"][0][1]["config"]["model_type"] == "scvae" and fakes["wandb"][-1] == ("finish",)
    assert "train/psnr" in wandb_logged[0][2]
    metrics = [c for c in fakes["mlflow"] if c[0] == "metrics"]
    assert len(metrics) == len(rows) and ("end",) == fakes["mlflow"][-1]
    assert fakes["mlflow"][0] == ("uri", (out / "mlruns").resolve().as_uri())
    params = next(c[1] for c in fakes["mlflow"] if c[0] == "params")
    assert params["model.n_atoms"] == "36"


@pytest.mark.parametrize("value, message", [("loggers=[comet]", "unknown tracker 'comet'"),
                                            ("loggers=[wandb]", "wandb is not installed")])
def test_unknown_or_missing_trackers_are_refused_before_anything_is_written(value, message, tmp_path, capsys,
                                                                            monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # importlib treats None as "not installed"
    assert main(["train", "--out", str(tmp_path / "run"), "--no-progress", *TINY, "steps=1", value]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_tensorboard_the_default_logger_writes_event_files(image_folder, tmp_path):
    """TensorBoard (in the test extra) receives every train and val scalar that metrics.jsonl holds."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert main(["train", "--data", str(image_folder), "--out", str(run), "--no-progress", "--steps", "3", *TINY,
                 "val_ratio=0.25"]) == 0
    events = EventAccumulator(str(run / "tensorboard")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/psnr", "val/psnr"} <= tags
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if r["split"] == "val"]
    scalars = events.Scalars("val/psnr")
    assert [e.step for e in scalars] == [r["step"] for r in val]
    # TensorBoard stores float32, metrics.jsonl float64; a flat list keeps pytest.approx valid on every pytest
    assert [e.value for e in scalars] == pytest.approx([r["psnr"] for r in val], rel=1e-6)
