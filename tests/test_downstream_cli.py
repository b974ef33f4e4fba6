"""The downstream commands end to end in a temp dir: interpolate, generate, segment, segment-eval, report."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scvae.cli import main


@pytest.fixture(scope="module")
def masked_set(tmp_path_factory):
    """8 noisy two-colour images (a rectangle on a background) with binary JPEG masks at half the size,
    as in the Weizmann horses (JPEG masks, images larger than their masks)."""
    root = tmp_path_factory.mktemp("masked")
    (root / "rgb").mkdir(), (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        mask = np.zeros((120, 160), np.uint8)
        top, left = rng.integers(10, 50), rng.integers(10, 80)
        mask[top:top + 60, left:left + 70] = 255
        image = np.where(mask[..., None] > 0, rng.integers(120, 255, 3), rng.integers(0, 100, 3)).astype(float)
        image = np.clip(image + rng.normal(0, 15, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / "rgb" / f"cat{i}.jpg", quality=90)
        Image.fromarray(mask).resize((80, 60), Image.Resampling.NEAREST).save(root / "masks" / f"cat{i}.jpg")
    return root


def test_interpolate_writes_a_strip(tiny_run, tmp_path, capsys):
    images = sorted(str(p) for p in (tiny_run.parent / "images").glob("*.png"))[:2]
    out = tmp_path / "strip.png"
    assert main(["interpolate", "--model", str(tiny_run), *images, "--steps", "5", "--out", str(out)]) == 0
    assert Image.open(out).size[0] > 5 * Image.open(out).size[1] * 0.8  # one row of 5 frames
    assert "monotonically within" in capsys.readouterr().out


def test_generate_writes_a_grid(tiny_run, tmp_path, capsys):
    out = tmp_path / "samples.png"
    assert main(["generate", "--model", str(tiny_run), "--n", "4", "--fit-images", "24", "--components", "8",
                 "--out", str(out), "--no-progress"]) == 0
    assert out.is_file() and "novelty" in capsys.readouterr().out


def test_segment_writes_labels_and_overlays(tiny_run, masked_set, tmp_path):
    images = [str(p) for p in sorted((masked_set / "rgb").glob("*.jpg"))[:2]]
    assert main(["segment", "--model", str(tiny_run), *images, "--k", "3", "--out", str(tmp_path / "seg")]) == 0
    labels = Image.open(tmp_path / "seg" / "cat0_labels.png")
    assert labels.mode == "P" and labels.size == (160, 120)
    assert set(np.unique(np.asarray(labels))) <= {0, 1, 2}
    assert Image.open(tmp_path / "seg" / "cat0_overlay.png").size == (160, 120)


def test_segment_regions_mode_finds_the_rectangle(tiny_run, masked_set, tmp_path, capsys):
    """--method regions: superpixels merged by colour, atom histograms and boundaries, cut at --k regions; on
    a rectangle on a background, 2 regions follow the mask."""
    images = [str(p) for p in sorted((masked_set / "rgb").glob("*.jpg"))[:2]]
    assert main(["segment", "--model", str(tiny_run), *images, "--method", "regions", "--k", "2",
                 "--out", str(tmp_path / "seg")]) == 0
    assert "2 regions" in capsys.readouterr().out
    labels = np.asarray(Image.open(tmp_path / "seg" / "cat0_labels.png"))
    mask = np.asarray(Image.open(masked_set / "masks" / "cat0.jpg").resize((160, 120), Image.Resampling.NEAREST)) > 127
    assert len(np.unique(labels)) == 2
    agree = max(np.mean((labels == labels[mask][0]) == mask), np.mean((labels != labels[mask][0]) == mask))
    assert agree > 0.9


def test_segment_regions_mode_chooses_the_number_of_regions_by_level(tiny_run, masked_set, tmp_path, capsys):
    """Without --k the hierarchy is cut at --level: a high level leaves one region, a low one many; a bad
    level is refused in one line before anything is written."""
    image = str(sorted((masked_set / "rgb").glob("*.jpg"))[0])
    counts = {}
    for level in (0.01, 1000.0):
        out = tmp_path / f"seg{level}"
        assert main(["segment", "--model", str(tiny_run), image, "--method", "regions", "--level", str(level),
                     "--out", str(out)]) == 0
        counts[level] = len(np.unique(np.asarray(Image.open(out / "cat0_labels.png"))))
    assert "regions at level 1000.0" in capsys.readouterr().out
    assert counts[1000.0] == 1 and counts[0.01] > 2
    assert main(["segment", "--model", str(tiny_run), image, "--method", "regions", "--level", "nan",
                 "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
    assert "--level must be a finite number > 0" in capsys.readouterr().err


def test_segment_regions_with_textons_fitted_on_the_images_given(tiny_run, masked_set, tmp_path, capsys):
    """--texture textons: the latent's textons, fitted on every image given, merged at the textons' weight and
    cut at their level by default; --texture with --method kmeans is refused before anything is written."""
    from scvae.presets import TEXTON_DEFAULTS

    images = [str(p) for p in sorted((masked_set / "rgb").glob("*.jpg"))[:3]]
    assert main(["segment", "--model", str(tiny_run), *images, "--method", "regions", "--texture", "textons",
                 "--out", str(tmp_path / "seg")]) == 0
    printed = capsys.readouterr().out
    assert f"regions at level {TEXTON_DEFAULTS['level']}" in printed
    assert f"{TEXTON_DEFAULTS['n_textons']} textons of the latent" in printed
    for path in images:
        stem = Path(path).stem
        assert np.asarray(Image.open(tmp_path / "seg" / f"{stem}_labels.png")).shape == (120, 160)
    assert main(["segment", "--model", str(tiny_run), images[0], "--texture", "textons",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "--texture chooses what --method regions merges by" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_segment_eval_table_with_a_baseline(tiny_run, masked_set, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["segment-eval", "--model", str(tiny_run), "--images", str(masked_set / "rgb"),
                 "--masks", str(masked_set / "masks"), "--baseline", str(tiny_run), "--refine", "slic",
                 "--out", str(out), "--no-progress"]) == 0
    result = json.loads((out / "segment_eval.json").read_text())
    assert result["k"] == 2 and result["n_images"] == 8  # k defaults to the classes in the masks
    assert list(result["methods"]) == ["scvae codes", "scvae codes (run)", "pixels + position"]
    paired = result["paired_miou_difference"]
    assert paired["of"] == "scvae codes" and list(paired["minus"]) == ["scvae codes (run)", "pixels + position"]
    assert paired["minus"]["scvae codes (run)"]["difference"] == 0  # the same model segments identically
    assert "paired bootstrap" in (out / "segment_eval.md").read_text()
    for scores in result["methods"].values():
        assert 0 <= scores["miou"] <= 1 and -1 <= scores["ari"] <= 1 and scores["n_images"] == 8
    # two flat colours are easy for pixel clustering
    assert result["methods"]["pixels + position"]["miou"] > 0.9
    assert (out / "overlays.png").is_file() and "| pixels + position |" in capsys.readouterr().out


def test_segment_eval_overlays_name_the_classes(tiny_run, masked_set, tmp_path):
    """--class-names (inline or a file) puts a legend of the class colours under overlays.png."""
    from scvae.evaluation.plots import palette

    names = tmp_path / "classes.txt"
    names.write_text("background\ncat\n")
    out = tmp_path / "eval"
    assert main(["segment-eval", "--model", str(tiny_run), "--images", str(masked_set / "rgb"), "--masks",
                 str(masked_set / "masks"), "--class-names", str(names), "--limit", "2", "--out", str(out),
                 "--no-progress"]) == 0
    assert json.loads((out / "segment_eval.json").read_text())["class_names"] == ["background", "cat"]
    picture = np.asarray(Image.open(out / "overlays.png").convert("RGB"))
    key = picture[int(picture.shape[0] * 0.85):]  # the legend's strip under the grid
    for colour in palette(2):
        assert (key == colour).all(-1).sum() > 20  # each class's swatch
    assert main(["segment-eval", "--model", str(tiny_run), "--images", str(masked_set / "rgb"), "--masks",
                 str(masked_set / "masks"), "--class-names", "background , cat", "--limit", "2",
                 "--out", str(tmp_path / "inline"), "--no-progress"]) == 0


@pytest.mark.parametrize("argv, message", [
    (["segment-eval", "--images", "{data}/rgb", "--masks", "{data}/masks", "--class-names", "sky", "--out", "e"],
     "1 given, but the masks also use label(s) 1"),
    (["segment-eval", "--images", "{data}/rgb", "--masks", "{data}/masks", "--class-names", "a,,b", "--out", "e"],
     "expected names separated by commas"),
    (["segment-eval", "--images", "{data}/rgb", "--masks", "{data}/nowhere"], "no such data folder"),
    (["segment-eval", "--images", "{data}/rgb", "--masks", "{data}/masks", "--k", "1"], "k must be >= 2"),
    (["segment-eval", "--images", "{data}/rgb", "--masks", "{data}/masks", "--k", "0"], "k must be >= 2"),
    (["segment-eval", "--images", "{data}/rgb", "--masks", "{data}/masks", "--ignore", "0", "--ignore", "1"],
     "the masks hold 0 class label(s) once --ignore 0, 1 is left out"),
    (["segment", "{data}/rgb/missing.jpg"], "no such image file"),
    (["interpolate", "{data}/rgb/cat0.jpg", "{data}/rgb/cat1.jpg", "--out", "strip.jpg"], "must be a .png"),
    (["interpolate", "{data}/rgb/cat0.jpg", "{data}/rgb/cat1.jpg", "--size", "17"], "multiple of 2"),
    (["generate", "--n", "0"], "--n must be a positive integer"),
])
def test_downstream_errors_are_one_line(argv, message, tiny_run, masked_set, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = [a.format(data=masked_set) for a in argv]
    assert main([argv[0], "--model", str(tiny_run), *argv[1:]]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("scvae: error:") and message in err and "\n" not in err
    assert not (tmp_path / "e").exists()  # refused before anything was written


def test_report_is_self_contained(tiny_run, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(tiny_run), "--out", str(out), "--no-progress"]) == 0
    page = out.read_text()
    for heading in ("Training", "Reconstruction", "Dictionary", "Interpolation", "Generation", "segmentation"):
        assert heading in page
    assert page.count("data:image/png;base64,") >= 7 and 'src="http' not in page and "src=\"file" not in page
    assert '<nav class="toc">' in page and 'href="#generation"' in page
    assert "How the run was made" in page and "train --data" in page and "torch " in page
    assert "the defaults of `scvae generate`" in page
    assert "of the files held out file by file" in page  # which held-out number this is
    assert "Felzenszwalb-Huttenlocher, each at its parameter chosen on BSDS500 train" in page  # the regions panel
    assert (tmp_path / "report_files" / "regions.png").stat().st_size > 1000


def test_report_shows_the_runs_saved_segment_eval(tiny_run, masked_set, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert main(["segment-eval", "--model", str(run), "--images", str(masked_set / "rgb"),
                 "--masks", str(masked_set / "masks"), "--no-progress"]) == 0
    assert (run / "segment_eval" / "segment_eval.json").is_file()  # default --out: inside the run
    assert main(["report", str(run), "--out", str(tmp_path / "r.html"), "--no-progress"]) == 0
    page = (tmp_path / "r.html").read_text()
    assert "scvae segment-eval on 8 images" in page and "paired bootstrap" in page and "pixels + position" in page


def test_report_of_a_folder_that_is_no_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def _browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        chromium = None
    if not (chromium and driver):
        if os.environ.get("SCVAE_REQUIRE_BROWSER"):
            pytest.fail("SCVAE_REQUIRE_BROWSER is set but chromium, chromedriver or selenium is missing")
        pytest.skip("needs Debian's chromium + chromium-driver and selenium (.ci/run installs them)")
    return chromium, driver


def test_report_opens_in_headless_chromium_with_every_image_loaded(tiny_run, tmp_path):
    chromium, driver_path = _browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    out = tmp_path / "report.html"
    assert main(["report", str(tiny_run), "--out", str(out), "--no-progress"]) == 0
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        browser.get(out.as_uri())
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])")
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        browser.set_window_size(1200, 3000)
        browser.save_screenshot(str(tmp_path / "report.png"))  # SCVAE_SCREENSHOT_DIR keeps it for a person to look at
        if os.environ.get("SCVAE_SCREENSHOT_DIR"):
            shutil.copy(tmp_path / "report.png", Path(os.environ["SCVAE_SCREENSHOT_DIR"]) / "report.png")
        widths = browser.execute_script("return Array.from(document.images).map(i => i.width)")
    finally:
        browser.quit()
    assert min(widths) >= 240  # small PNGs are drawn at a readable size
    assert len(images) >= 7
    assert all(complete and width > 0 and height > 0 for _, complete, width, height in images), images
    assert errors == []


def test_report_of_a_run_with_damaged_records(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "metrics.jsonl").write_text('{"split": "train", "step": 1, "loss": 0.5}\n{"split": "tra')  # killed writer
    (run / "run_info.json").write_text("{damaged")
    (run / "eval").mkdir(exist_ok=True)
    (run / "eval" / "eval.json").write_text("{}")
    (run / "segment_eval").mkdir(exist_ok=True)
    (run / "segment_eval" / "segment_eval.json").write_bytes(b"\xff\xfe not utf-8")
    (tmp_path / "compare.json").write_text("[1, 2]")  # the run's parent is a compare folder with damaged records
    (tmp_path / "reconstructions.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert main(["report", str(run), "--out", str(tmp_path / "r.html"), "--no-progress"]) == 0
    page = (tmp_path / "r.html").read_text()
    assert "run_info.json is unreadable" in page and "training loss and validation metrics" in page
    for damaged in ("eval.json is damaged", "segment_eval.json is damaged", "compare.json is damaged",
                    "reconstructions.png: damaged or not a PNG"):
        assert damaged in page, damaged
    (run / "metrics.jsonl").unlink()
    assert main(["report", str(run), "--out", str(tmp_path / "r.html"), "--overwrite", "--no-progress"]) == 0
    assert "No metrics.jsonl" in (tmp_path / "r.html").read_text()
