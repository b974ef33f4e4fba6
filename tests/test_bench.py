"""The benchmark scripts run (tiny settings) and write the JSON they promise; they are not timed here."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_train_step_speed_reports_every_model_against_the_reference(tmp_path):
    out = run("train_step_speed.py", "--preset", "tiny", "--models", "scvae,vqvae-strong", "--rounds", "2",
              "--steps", "1", "--json", str(tmp_path / "s.json"))
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["order"] == "alternating" and set(data["models"]) == {"scvae", "vqvae-strong"}
    assert data["models"]["vqvae-strong"]["ratio_to_reference"] == 1.0
    assert data["models"]["scvae"]["sec_per_step"] > 0 and "| scvae |" in out
    # the ratio is the median of the per-round ratios, not the ratio of the medians: recomputed from the rounds
    mine, reference = (data["models"][n]["round_seconds"] for n in ("scvae", "vqvae-strong"))
    per_round = sorted(a / b for a, b in zip(mine, reference))
    assert len(per_round) == 2 and data["models"]["scvae"]["ratio_to_reference"] == pytest.approx(sum(per_round) / 2)
    assert data["models"]["scvae"]["ratio_range"] == pytest.approx([per_round[0], per_round[-1]])


def test_lista_speed_reports_memory_and_its_growth_with_t(tmp_path):
    run("lista_speed.py", "--scale", "small", "--iters", "1,8", "--repeats", "1", "--json", str(tmp_path / "l.json"))
    rows = {(r["n_iter"], r["variant"]): r for r in json.loads((tmp_path / "l.json").read_text())["results"]}
    assert rows[(8, "autograd")]["memory_ratio"] > 4  # autograd keeps every iterate
    assert rows[(8, "scvae, grad_iterations=1")]["memory_ratio"] <= 1.5  # truncated backprop: O(1) in T
    assert rows[(8, "scvae")]["saved_mib"] < 0.6 * rows[(8, "autograd")]["saved_mib"]
    assert rows[(8, "scvae, recompute (exact)")]["memory_ratio"] <= 1.5  # exact, and O(1) in T


def test_refit_speed_compares_both_refits_on_the_same_supports(tmp_path):
    out = run("refit_speed.py", "--batch", "2", "--repeats", "1", "--json", str(tmp_path / "r.json"))
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert len(rows) == 6 and "| refit alone |" in out
    assert all(r["ms"] > 0 for r in rows.values())
    assert all(r["max_rel_difference"] < 5e-3 for r in rows.values())  # the same least-squares values
    assert rows["refit alone | float64 LU (before)"]["ratio"] == 1.0


def test_rd_points_trains_points_in_parallel_and_merges_earlier_ones(tmp_path):
    earlier = {"points": [{"family": "vqvae-strong", "setting": {}, "bits_per_image": 40.0, "psnr": 12.0}]}
    (tmp_path / "rd.json").write_text(json.dumps(earlier))
    out = run("rd_points.py", "--out", str(tmp_path / "p"), "--preset", "tiny", "--steps", "3", "--jobs", "2",
              "--point", "scvae model.max_active=2 model.refit=true", "--point", "fsq model.levels=[5,5]",
              "--point", "scvae model.n_atoms=-4", "--merge", str(tmp_path / "rd.json"))
    data = json.loads((tmp_path / "p" / "points.json").read_text())
    runs = {p["run"]: p for p in data["points"]}
    assert set(runs) == {"scvae-max_active-2-refit-true", "fsq-levels-5x5"}  # the invalid point failed alone
    assert "failed" in out and "n_atoms" in (tmp_path / "p" / "scvae-n_atoms-x4.log").read_text()
    assert runs["scvae-max_active-2-refit-true"]["active_frac"] <= 2 / 36 + 1e-9
    assert all(p["bits_per_image"] > 0 and p["val_curve"] for p in runs.values())
    assert data["merged"] == earlier["points"] and (tmp_path / "p" / "rd.png").stat().st_size > 1000
    assert "| vqvae-strong | preset | 40 |" in (tmp_path / "p" / "points.md").read_text()


def test_atom_usage_reports_perplexity_and_rejects_a_folder_that_is_no_run(tiny_run, tmp_path):
    out = run("atom_usage.py", str(tiny_run), "--threads", "1", "--json", str(tmp_path / "u.json"))
    (row,) = json.loads((tmp_path / "u.json").read_text())["rows"]
    assert row["units"] == 36 and 1 <= row["perplexity"] <= row["used"] <= 36 and "| perplexity |" in out
    result = subprocess.run([sys.executable, str(BENCH / "atom_usage.py"), str(tmp_path)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2 and "not a run directory" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u.json"]


def test_rd_margins_reads_points_files_and_names_a_missing_one(tmp_path):
    rows = [{"family": f, "bits_per_image": b, "psnr": p, "setting": s} for f, b, p, s in [
        ("rvq", 1000, 20.0, ["model.num_quantizers=2"]), ("rvq", 2000, 22.0, ["model.num_quantizers=4"]),
        ("rvq", 1500, 23.0, ["model.num_quantizers=3", "model.decay=0.8"]),
        ("scvae", 1500, 21.5, ["model.max_active=8"])]]
    (tmp_path / "points.json").write_text(json.dumps({"points": rows[:2], "merged": rows[2:]}))
    out = run("rd_margins.py", str(tmp_path / "points.json"), "--against", "rvq", "--exclude", "decay=0.8",
              "--json", str(tmp_path / "m.json"))
    margins = json.loads((tmp_path / "m.json").read_text())["rvq"]
    assert [round(m["margin"], 6) for m in margins] == [0.5] and "| model.max_active=8 | 1 | 1500 | 21.50 | 21.00 |" in out
    missing = subprocess.run([sys.executable, str(BENCH / "rd_margins.py"), str(tmp_path / "nope.json"),
                              "--against", "rvq"], capture_output=True, text=True)
    assert missing.returncode == 2 and "nope.json" in missing.stderr and "Traceback" not in missing.stderr


def test_codec_rd_codes_real_files_beside_jpeg_and_webp(tiny_run, tmp_path):
    out = run("codec_rd.py", str(tiny_run), "--steps", "auto,0.5", "--fit-images", "6", "--images", "3",
              "--context", "--json", str(tmp_path / "c.json"), "--figure", str(tmp_path / "c.png"))
    result = json.loads((tmp_path / "c.json").read_text())
    assert [(r["step_setting"], r["context"]) for r in result["rows"]] == [
        ("auto", False), ("auto", True), ("0.5", False), ("0.5", True)] and result["rows"][2]["step"] == 0.5
    assert all(r["bits"] > result["header_bits"] and r["encode_ms"] > 0 for r in result["rows"])
    assert {"JPEG", "WEBP"} == set(result["anchors"]) and "| file bits |" in out
    assert (tmp_path / "c.png").stat().st_size > 0


def test_active_atoms_histogram_and_maps(tiny_run, tmp_path):
    out = run("active_atoms.py", str(tiny_run), "--images", "3", "--json", str(tmp_path / "a.json"),
              "--figure", str(tmp_path / "a.png"))
    stats = json.loads((tmp_path / "a.json").read_text())["run"]
    assert sum(stats["histogram"]) == 3 * 8 * 8 and 0 < stats["mean"] <= stats["max"] <= stats["n_atoms"]
    assert "| run |" in out and (tmp_path / "a.png").stat().st_size > 0


def test_rate_points_rates_finished_runs_for_rd_margins(tiny_run, tmp_path):
    run("rate_points.py", str(tiny_run), "--out", str(tmp_path / "p.json"), "--limit", "3")
    points = json.loads((tmp_path / "p.json").read_text())["points"]
    assert [p["family"] for p in points] == ["scvae"] and points[0]["bits_per_image"] > 0
    assert points[0]["setting"] == {"run": "run"}
    run("rate_points.py", str(tiny_run), "--out", str(tmp_path / "s.json"), "--limit", "3", "--sweep")
    swept = json.loads((tmp_path / "s.json").read_text())["points"]
    steps = [p["setting"].get("step") for p in swept]
    assert len(swept) == 9 and steps[0] is None and steps[1:] == sorted(steps[1:], reverse=True)
    assert swept[1]["bits_per_image"] < swept[-1]["bits_per_image"]  # coarser steps cost fewer bits


BSDS = Path(__file__).resolve().parents[2] / "shared" / "data" / "bsds500"


@pytest.mark.skipif(not BSDS.is_dir(), reason="needs ../shared/data/bsds500")
def test_bsds_regions_scores_a_segmenter_at_ods_and_ois(tmp_path):
    out = run("bsds_regions.py", "--data", str(BSDS), "--limit", "1", "--methods", "felzenszwalb,merge",
              "--json", str(tmp_path / "b.json"), "--overlays", "1", "--png", str(tmp_path / "o.png"))
    r = json.loads((tmp_path / "b.json").read_text())["methods"]["felzenszwalb"]
    assert r["ois"]["covering"] >= r["ods"]["covering"] > 0.2 and r["ois"]["voi"] <= r["ods"]["voi"]
    assert len(r["sweep"]) == 7 and "| felzenszwalb |" in out and "| merge |" in out
    assert (tmp_path / "o.png").stat().st_size > 10_000  # photo, human, felzenszwalb and merge panels


@pytest.mark.skipif(not BSDS.is_dir(), reason="needs ../shared/data/bsds500")
def test_region_textons_chooses_each_level_on_train_and_scores_the_split_at_it(tiny_run, tmp_path):
    out = run("region_textons.py", "--data", str(BSDS), "--model", str(tiny_run),
              "--configs", "none@1,textons4@2,code-textons3@1,decoder-textons3@1",
              "--tune", "1", "--fit", "1", "--limit", "1", "--json", str(tmp_path / "t.json"))
    result = json.loads((tmp_path / "t.json").read_text())
    rows, reference = result["rows"], result["felzenszwalb_sec_per_image"]
    assert [(r["texture"], r["weight"]) for r in rows] == [("none", 1.0), ("textons4", 2.0), ("code-textons3", 1.0),
                                                          ("decoder-textons3", 1.0)]
    for r in rows:
        assert r["ods"]["covering"] >= r["covering_at_level"] > 0 and r["ois"]["covering"] >= r["ods"]["covering"]
        assert r["sec_per_image"] >= r["fit_seconds"] > 0 and reference > 0  # one photo carries the whole fit
        assert r["time_to_felzenszwalb"] == pytest.approx(r["sec_per_image"] / reference)
    assert rows[1]["fit_seconds"] > rows[0]["fit_seconds"]  # fitting textons costs more than no texture
    assert "| textons4 @ 2 |" in out
    bad = subprocess.run([sys.executable, str(BENCH / "region_textons.py"), "--data", str(BSDS), "--model",
                          str(tiny_run), "--configs", "textures@1", "--json", str(tmp_path / "bad.json")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown texture 'textures'" in bad.stderr and not (tmp_path / "bad.json").exists()


@pytest.mark.skipif(not BSDS.is_dir(), reason="needs ../shared/data/bsds500")
def test_region_textons_tunes_merge_options_on_train_alone(tiny_run, tmp_path):
    out = run("region_textons.py", "--data", str(BSDS), "--model", str(tiny_run), "--configs",
              "textons4@2,textons4@2+boundary_weight=3+size_power=0.1", "--tune", "1", "--fit", "1", "--tune-only",
              "--json", str(tmp_path / "t.json"))
    rows = json.loads((tmp_path / "t.json").read_text())["rows"]
    assert [r["merge"] for r in rows] == [{}, {"boundary_weight": 3.0, "size_power": 0.1}]
    assert all(0 < r["tune_covering"] == r["tune"]["covering"] <= 1 and "ods" not in r for r in rows)  # no split scored
    assert "| textons4 @ 2 +boundary_weight=3 +size_power=0.1 |" in out
    for config, message in [("textons4@2+colour_weight=1", "'colour_weight' is not a merge option"),
                            ("textons4@2+scale=big", "scale must be a number")]:
        bad = subprocess.run([sys.executable, str(BENCH / "region_textons.py"), "--data", str(BSDS), "--model",
                              str(tiny_run), "--configs", config, "--tune-only"], capture_output=True, text=True,
                             timeout=120)
        assert bad.returncode == 2 and message in bad.stderr


@pytest.mark.skipif(not BSDS.is_dir(), reason="needs ../shared/data/bsds500")
def test_region_work_size_pairs_each_measure_of_the_two_settings(tiny_run, tmp_path):
    """One photo: each difference is the default's score minus the full-size one, and its interval is that
    single difference (a resample of one photo is that photo)."""
    run("region_work_size.py", "--data", str(BSDS), "--model", str(tiny_run), "--limit", "1",
        "--json", str(tmp_path / "w.json"))
    result = json.loads((tmp_path / "w.json").read_text())
    for measure in ("covering", "pri", "voi"):
        r = result[measure]
        assert r["difference"] == pytest.approx(r["after"] - r["before"])
        assert r["interval95"] == pytest.approx([r["difference"]] * 2)
    assert 0 < result["covering"]["before"] <= 1 and result["n_images"] == 1


@pytest.mark.skipif(not BSDS.is_dir(), reason="needs ../shared/data/bsds500")
def test_segmentation_benchmarks_scores_bsds500_with_the_region_method_and_a_fixed_parameter(tiny_run, tmp_path):
    out = run("segmentation_benchmarks.py", "--model", str(tiny_run), "--data-root", str(BSDS.parent), "--datasets",
              "bsds500", "--regions", "--limit", "1", "--bsds-methods", "merge-codes,felzenszwalb", "--out", str(tmp_path))
    result = json.loads((tmp_path / "segmentation.json").read_text())["datasets"]["bsds500"]
    ours, theirs = result["methods"]["merge-codes"], result["methods"]["felzenszwalb"]
    from scvae.downstream.region_methods import FIXED

    assert ours["fixed"]["parameter"] == FIXED["merge-codes"] and theirs["fixed"]["parameter"] == FIXED["felzenszwalb"]
    assert theirs["ods"]["covering"] >= theirs["fixed"]["covering"] > 0.2 and "| merge-codes |" in out


def test_gpu_check_runs_end_to_end_on_cpu_with_the_tiny_preset(tmp_path, image_folder):
    """bench/gpu_check.sh, the one-shot GPU script, on CPU at tiny sizes: every part writes its files."""
    out = tmp_path / "check"
    env = {**os.environ, "PRESET": "tiny", "TRAIN_PRESET": "tiny", "TRAIN_STEPS": "4", "STEPS": "1", "MODELS": "ae",
           "MAX_BATCH": "16", "DISC_LAYERS": "2", "DATA": str(image_folder), "OMP_NUM_THREADS": "1"}
    env.pop("SCVAE_LPIPS_VGG", None)
    result = subprocess.run(["bash", str(BENCH / "gpu_check.sh"), str(out)], capture_output=True, text=True, env=env,
                            timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("throughput_b8", "throughput_b8_compiled", "throughput_bmax", "throughput_bmax_compiled"):
        rows = json.loads((out / f"{name}.json").read_text())["results"]
        assert rows[0]["images_per_s"] > 0 and rows[0]["compiled"] == name.endswith("compiled")
    assert "done: 20 steps" in (out / "torchrun.txt").read_text()
    assert (out / "camvid" / "checkpoints" / "last").is_dir() and (out / "lpips_skipped.txt").is_file()
    assert any(p.suffix == ".png" for p in (out / "camvid").iterdir())


def test_size_ablation_and_whole_images_on_a_tiny_model(tmp_path):
    """The ablation's "quadrant by quadrant" row is the model's own reconstruction of each quadrant, and the
    whole-image bench reports how much a crop's latent moves inside the whole frame."""
    import numpy as np
    import skimage.data
    import torch
    from PIL import Image

    from scvae import SCVAE
    from scvae.training import load_model

    from .tiny import TINY_SCVAE

    torch.manual_seed(0)
    SCVAE(**TINY_SCVAE).save_pretrained(tmp_path / "model")
    (tmp_path / "data").mkdir()
    Image.fromarray(skimage.data.astronaut()[100:164, 150:246]).save(tmp_path / "data" / "a.png")
    run("size_ablation.py", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "data"),
        "--json", str(tmp_path / "s.json"))
    rows = json.loads((tmp_path / "s.json").read_text())["psnr"]
    assert len(rows) == 7 and rows["quadrant by quadrant, reflect padding"] != rows["quadrant by quadrant (the training condition)"]
    sys.path.insert(0, str(BENCH))
    from size_ablation import from_quadrants, to_quadrants
    from whole_images import crops, psnr

    model = load_model(tmp_path / "model").eval()
    x = crops(torch.from_numpy(np.array(Image.open(tmp_path / "data" / "a.png"))).permute(2, 0, 1)[None].float()
              / 127.5 - 1, 32)
    with torch.no_grad():
        expected = psnr(x, from_quadrants(model.reconstruct(to_quadrants(x))))
    assert rows["quadrant by quadrant (the training condition)"] == pytest.approx(expected, abs=1e-4)
    run("whole_images.py", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "data"),
        "--json", str(tmp_path / "w.json"))
    mean = json.loads((tmp_path / "w.json").read_text())["mean"]
    assert 0 < mean["latent_change"] < 2 and mean["tiled"] > 0


def test_prior_families_reports_the_learned_prior_against_the_per_channel_model(tiny_run, tmp_path):
    import shutil

    out, labelled = tmp_path / "priors", tmp_path / "labelled"
    for i, image in enumerate(sorted((tiny_run.parent / "images").glob("*.png"))):
        (labelled / f"class{i % 2}").mkdir(parents=True, exist_ok=True)
        shutil.copy(image, labelled / f"class{i % 2}" / image.name)
    printed = run("prior_families.py", "--runs", f"scvae={tiny_run}", "--steps", "3", "--images", "8",
                  "--samples", "6", "--classifier-data", str(labelled), "--real-data", str(labelled), "--out", str(out),
                  "--json", str(tmp_path / "p.json"))
    row = json.loads((tmp_path / "p.json").read_text())["rows"][0]
    assert row["family"] == "scvae" and row["sparse"] and row["prior_bits"] > 0 and row["context_bits"] > 0
    assert row["binding"] == "sum"
    assert 0 <= row["prior_precision"] <= 1 and 0 <= row["baseline_recall"] <= 1 and row["prior_frechet"] >= 0
    assert (out / "samples_scvae.png").is_file() and (out / "scvae" / "config.json").is_file()
    assert (out / "classifier.safetensors").is_file() and (out / "samples_scvae_pca_mixture.png").is_file()
    assert "| scvae |" in printed and "Frechet (classifier)" in printed
    # --reuse measures the saved prior instead of training it again, and refuses one of other settings
    printed = run("prior_families.py", "--runs", f"scvae={tiny_run}", "--steps", "3", "--images", "8", "--samples",
                  "6", "--out", str(out), "--reuse", "--temperature", "0.5", "--json", str(tmp_path / "again.json"))
    again = json.loads((tmp_path / "again.json").read_text())["rows"][0]
    assert again["prior_bits"] == row["prior_bits"] and again["train_seconds"] is None
    assert row["temperature"] == 1.0 and again["temperature"] == 0.5 and "| scvae (T 0.5) |" in printed
    assert (out / "samples_scvae_T0.5.png").is_file() and (out / "samples_scvae.png").is_file()  # each its own grid
    cold = subprocess.run([sys.executable, str(BENCH / "prior_families.py"), "--runs", f"scvae={tiny_run}",
                           "--temperature", "0", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert cold.returncode == 2 and "--temperature must be > 0" in cold.stderr
    bad = subprocess.run([sys.executable, str(BENCH / "prior_families.py"), "--runs", f"scvae={tiny_run}", "--steps",
                          "4", "--images", "8", "--out", str(out), "--reuse"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "after 3 steps with sum binding, not of" in bad.stderr
    assert "drop --reuse" in bad.stderr
    other = subprocess.run([sys.executable, str(BENCH / "prior_families.py"), "--runs", f"scvae={tiny_run}", "--steps",
                            "3", "--images", "8", "--out", str(out), "--reuse", "--binding", "product"],
                           capture_output=True, text=True, timeout=300)
    assert other.returncode == 2 and "after 3 with product; drop --reuse" in other.stderr


def test_coding_speed_compares_files_with_the_network_side_by_side(tiny_run, tmp_path):
    from scvae.cli import main

    prior = tmp_path / "prior"
    assert main(["prior", "train", "--model", str(tiny_run), "--out", str(prior), "--steps", "2", "--batch-size", "4",
                 "--no-progress"]) == 0
    printed = run("coding_speed.py", "--model", str(tiny_run), "--data", str(tiny_run.parent / "images"),
                  "--images", "3", "--prior", str(prior), "--prior-images", "2", "--json", str(tmp_path / "s.json"))
    rows = json.loads((tmp_path / "s.json").read_text())["rows"]
    assert [r["coder"] for r in rows] == ["per-channel", "per-channel + context", "learned prior"]
    assert all(r["compress_per_s"] > 0 and r["decompress_over_decode"] > 0 for r in rows)
    assert "| learned prior | 2 |" in printed


def test_probe_margins_pairs_two_saved_results_and_refuses_unpaired_ones(tmp_path):
    labels = "a" * 40
    def result(correct):
        return {"test_labels_sha1": labels, "rows": [{"feature": "kmeans@2:quadrant-sum", "correct": correct}]}
    (tmp_path / "a.json").write_text(json.dumps(result("1" * 30 + "0" * 10)))
    (tmp_path / "b.json").write_text(json.dumps({"results": {"ae": result("1" * 20 + "0" * 20)}}))
    out = run("probe_margins.py", f"{tmp_path}/a.json:kmeans@2:quadrant-sum", f"{tmp_path}/b.json#ae:kmeans@2:quadrant-sum",
              "--json", str(tmp_path / "m.json"))
    assert "| +25.0 |" in out
    margin = json.loads((tmp_path / "m.json").read_text())["margins"][0]
    assert margin["difference"] == pytest.approx(0.25) and margin["interval"][0] > 0
    (tmp_path / "c.json").write_text(json.dumps({**result("1" * 40), "test_labels_sha1": "b" * 40}))
    failed = subprocess.run([sys.executable, str(BENCH / "probe_margins.py"), f"{tmp_path}/a.json:kmeans@2:quadrant-sum",
                             f"{tmp_path}/c.json:kmeans@2:quadrant-sum"], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 2 and failed.stderr.count("\n") == 1 and "same test images" in failed.stderr
