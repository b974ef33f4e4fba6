"""First contact with the CLI: help without torch, the resolved config, the renamed model-type flag."""
import subprocess
import sys

import yaml

from scvae.cli import main


def test_the_cli_imports_no_torch_until_a_command_runs():
    code = "import sys, scvae.cli.main; print('torch' in sys.modules)"
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
