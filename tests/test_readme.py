"""The README's examples run as written."""
import re
import shlex
from pathlib import Path

import pytest

from scvae.cli.app import build_parser

ROOT = Path(__file__).resolve().parents[1]
# the README, the user guide and the measured rounds: every example in them runs
README = "".join((ROOT / name).read_text() for name in ("README.md", "docs/guide.md", "docs/results.md"))


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = _blocks("python")
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert (tmp_path / "my_model" / "model.safetensors").is_file()


def _scvae_commands():
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("scvae "):
                    yield shlex.split(part)[1:]
                elif part.startswith("torchrun ") and " -m scvae " in part:  # the launcher's own flags first
                    yield shlex.split(part.split(" -m scvae ", 1)[1])


@pytest.mark.parametrize("argv", list(_scvae_commands()), ids=lambda a: " ".join(a[:2]))
def test_cli_examples_parse(argv):
    args = build_parser().parse_args(argv)
    assert args.func is not None


def test_readme_and_ci_run_the_same_test_command():
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    command = next(line for block in _blocks("bash") for line in block.splitlines() if "pytest" in line)
    assert command.strip() in ci


def test_torchrun_examples_are_present():
    assert sum(1 for argv in _scvae_commands() if "--preset" in argv and "paper-f16" in argv) >= 2


@pytest.mark.parametrize("block", _blocks("yaml"))
def test_yaml_config_examples_resolve(block, tmp_path):
    from scvae.config import resolve_config

    path = tmp_path / "config.yaml"
    path.write_text(block)
    run = resolve_config(config_file=str(path))
    run.train.validate()
