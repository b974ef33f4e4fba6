"""First contact with the CLI: help without torch, the resolved config, the renamed model-type flag."""
import re
import subprocess
import sys

import pytest
import yaml

from scvae.cli import main


def test_the_cli_imports_no_torch_until_a_command_runs():
    code = "import sys, scvae.cli.app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_print_config_resolves_and_exits(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--print-config", "--model-type", "fsq", "lr=1e-3", "model.levels=[5,5]"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model_type"] == "fsq" and config["model"]["levels"] == [5, 5] and config["train"]["lr"] == 1e-3
    assert not any(tmp_path.iterdir())  # nothing written


def test_train_model_is_a_deprecated_alias_of_model_type(capsys):
    assert main(["train", "--print-config", "--model", "ae"]) == 0
    captured = capsys.readouterr()
    assert yaml.safe_load(captured.out)["model_type"] == "ae" and "deprecated" in captured.err
    assert main(["train", "--print-config", "--model", "ae", "--model-type", "vae"]) == 2


@pytest.mark.parametrize("override, key", [
    ("model.n_iter=8.5", "model.n_iter"), ("model.lam=nan", "model.lam"), ("model.ch_mult=[1,2.5]", "model.ch_mult"),
    ("model.learn_dictionary=3", "model.learn_dictionary"), ("min_lr_ratio=2", "min_lr_ratio"),
    ("betas=[0.9]", "betas"), ("device=gpu", "device"), ("model.resolution=30", "model.resolution"),
    ("lr=nan", "lr"), ("val_ratio=0", "val_ratio"), ("grad_clip=-1", "grad_clip"), ("steps=0", "steps"),
])
def test_bad_values_are_refused_at_config_time_naming_the_key(override, key, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--out", "run", override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and key in err
    assert not any(tmp_path.iterdir())


def test_model_overrides_take_any_number_spelling(capsys):
    assert main(["train", "--print-config", "model.usage_weight=1e-2", "model.max_active=null", "lr=3E-4"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["usage_weight"] == 0.01 and config["model"]["max_active"] is None
    assert config["train"]["lr"] == 3e-4


def test_nan_and_zero_cli_numbers_are_refused(tiny_run, tmp_path, capsys):
    image = tmp_path / "x.png"
    from PIL import Image
    import numpy as np

    Image.fromarray(np.full((20, 20, 3), 90, dtype=np.uint8)).save(image)
    for argv, key in [(["segment", "--model", str(tiny_run), str(image), "--position-weight", "nan"], "position weight"),
                      (["eval", "--model", str(tiny_run), "--data", str(tmp_path), "--limit", "0"], "--limit")]:
        assert main([*argv, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and key in err
    assert not (tmp_path / "out").exists()


def test_a_non_utf8_path_is_named_in_one_line(tiny_run, tmp_path, capsys):
    name = str(tmp_path) + "/bad\udcff.png"  # how Python passes a file name that is not UTF-8
    assert main(["reconstruct", "--model", str(tiny_run), name, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad" in err and "no such image file" in err


def test_train_help_lists_every_config_key(capsys):
    import dataclasses

    from scvae.config import TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert all(f"  {f.name} " in out for f in dataclasses.fields(TrainConfig))
    assert re.search(r"  lr +float, default 0.002", out) and "grad_iterations=None" in out and "codebook_dim=8" in out
    assert re.search(r"  val_every +int, default 0  \(0 = auto: steps // 20", out)  # the field's comment explains it


def test_training_progress_goes_through_logging(tmp_path, capsys):
    """The library logs to the "scvae" logger (silent unless configured); the CLI shows it on stderr."""
    import logging

    from .conftest import TINY

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    keep = Keep()
    logging.getLogger("scvae").addHandler(keep)
    try:
        assert main(["train", "--out", str(tmp_path / "run"), "--no-progress", *TINY, "steps=2", "val_every=1"]) == 0
    finally:
        logging.getLogger("scvae").removeHandler(keep)
    assert any(m.startswith("training scvae") for m in records) and any("held-out PSNR" in m for m in records)
    assert "scvae: step 2/2: held-out PSNR" in capsys.readouterr().err


def test_output_piped_into_a_reader_that_leaves_is_quiet():
    """`scvae presets | head -1`: no BrokenPipeError traceback."""
    import subprocess
    import sys

    result = subprocess.run(f"'{sys.executable}' -m scvae presets | head -1", shell=True, capture_output=True,
                            text=True, timeout=120)
    assert result.stdout.startswith("small-32") and "Traceback" not in result.stderr and result.stderr == ""


def test_overrides_may_be_mixed_with_flags(tmp_path, capsys):
    from .conftest import TINY

    out = tmp_path / "run"
    assert main(["train", "lr=1e-3", "--out", str(out), *TINY, "--print-config", "model.lam=0.4", "steps=7"]) == 0
    printed = capsys.readouterr().out
    assert "lr: 0.001" in printed and "lam: 0.4" in printed and "steps: 7" in printed
    assert main(["train", "lr=1e-3", "--out", str(out), "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


@pytest.mark.parametrize("override, hint", [("lam=0.4", "did you mean model.lam?"), ("stpes=3", "did you mean steps?"),
                                            ("model.lamm=1", "did you mean model.lam?"), ("model.lr=1", "did you mean lr?"),
                                            ("learning_rate=1e-3", "did you mean lr?"), ("wd=0.1", "did you mean weight_decay?"),
                                            ("zzz=1", "unknown config key 'zzz'")])
def test_config_typos_get_a_did_you_mean(override, hint, capsys):
    assert main(["train", "--print-config", override]) == 2
    err = capsys.readouterr().err.strip()
    assert hint in err and err.endswith("(scvae train --print-config lists every key)"), err
