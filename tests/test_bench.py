"""The benchmark scripts run (tiny settings) and write the JSON they promise; they are not timed here."""
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_train_throughput_runs_on_cpu_with_the_tiny_preset(tmp_path):
    out = run("train_throughput.py", "--preset", "tiny", "--steps", "1", "--warmup", "0", "--json", str(tmp_path / "t.json"))
    rows = json.loads((tmp_path / "t.json").read_text())["results"]
    assert [r["model"] for r in rows] == ["scvae", "ae", "vqvae-strong"] and "images/s" in out
    assert all(r["images_per_s"] > 0 and r["tflop_per_step"] > 0 and r["peak_memory_gib"] > 0 for r in rows)


def test_lista_speed_reports_memory_and_its_growth_with_t(tmp_path):
    run("lista_speed.py", "--scale", "small", "--iters", "1,8", "--repeats", "1", "--json", str(tmp_path / "l.json"))
    rows = {(r["n_iter"], r["variant"]): r for r in json.loads((tmp_path / "l.json").read_text())["results"]}
    assert rows[(8, "autograd")]["memory_ratio"] > 4  # autograd keeps every iterate
    assert rows[(8, "scvae, grad_iterations=1")]["memory_ratio"] <= 1.5  # truncated backprop: O(1) in T
    assert rows[(8, "scvae")]["saved_mib"] < 0.6 * rows[(8, "autograd")]["saved_mib"]
