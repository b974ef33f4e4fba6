"""The BSDS region measures against hand-computed cases, scikit-learn where they coincide, and one real
BSDS500 image scored independently in the test."""
from pathlib import Path

import numpy as np
import pytest

from scvae.downstream.region_benchmark import (ImageScore, benchmark, contingency, covering_counts, rand_index,
                                               read_bsds_ground_truth, score_image, variation_of_information)

BSDS = Path(__file__).resolve().parents[2] / "shared" / "data" / "bsds500"


def test_a_two_by_two_case_by_hand():
    seg, gt = np.array([[0, 0], [1, 1]]), np.array([[0, 1], [0, 1]])
    table = contingency(seg, gt)
    assert table.tolist() == [[1, 1], [1, 1]]
    assert rand_index(table) == pytest.approx(1 / 3)  # of 6 pixel pairs, 2 are split alike by both maps
    assert variation_of_information(table) == pytest.approx(2.0)  # independent fair coins: 1 + 1 - 0 bits
    assert covering_counts(table) == pytest.approx((2 * (1 / 3) + 2 * (1 / 3), 4))  # each IoU 1 / 3


def test_a_perfect_segmentation_up_to_label_names():
    gt = np.repeat(np.arange(4), 9).reshape(6, 6)
    score = score_image(gt * 7 + 3, [gt, gt])
    assert score.covering == pytest.approx(1) and score.pri == pytest.approx(1) and score.voi == pytest.approx(0)


def test_rand_index_and_voi_agree_with_scikit_learn():
    from scipy.stats import entropy
    from sklearn.metrics import mutual_info_score, rand_score

    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.integers(0, 5, (30, 40)), rng.integers(0, 3, (30, 40))
        table = contingency(a, b)
        assert rand_index(table) == pytest.approx(rand_score(a.ravel(), b.ravel()))
        bits = (entropy(np.bincount(a.ravel())) + entropy(np.bincount(b.ravel()))
                - 2 * mutual_info_score(a.ravel(), b.ravel())) / np.log(2)
        assert variation_of_information(table) == pytest.approx(bits)


def test_ods_takes_one_parameter_for_the_set_and_ois_the_best_per_image():
    def s(cover, pri, voi, area=100.0):
        return ImageScore(cover * area, area, pri, voi)

    scores = [[s(0.5, 0.7, 2.0), s(0.7, 0.8, 1.5)],  # image 0 prefers parameter "b"
              [s(0.6, 0.9, 1.0, area=300.0), s(0.4, 0.6, 3.0, area=300.0)]]  # image 1 prefers "a"
    result = benchmark(scores, ["a", "b"])
    assert result["ods"]["covering"] == pytest.approx((50 + 180) / 400)  # "a": (0.5*100 + 0.6*300) / 400
    assert result["ods"]["covering_parameter"] == "a"
    assert result["ods"]["pri"] == pytest.approx(0.8) and result["ods"]["voi"] == pytest.approx(1.5)
    assert result["ois"]["covering"] == pytest.approx((70 + 180) / 400)
    assert result["ois"]["pri"] == pytest.approx(0.85) and result["ois"]["voi"] == pytest.approx(1.25)


@pytest.mark.skipif(not BSDS.is_dir(), reason="needs ../shared/data/bsds500")
def test_one_real_image_scored_independently():
    """One annotator's segmentation of a val image scored against all annotators, the measures recomputed
    here from their definitions (pairs counted by scikit-learn, IoU region by region)."""
    from sklearn.metrics import rand_score

    gts = read_bsds_ground_truth(BSDS / "groundTruth" / "val" / sorted(p.name for p in
                                                                      (BSDS / "groundTruth" / "val").iterdir())[0])
    assert len(gts) >= 5 and all(g.shape == gts[0].shape for g in gts)
    seg = gts[0]
    score = score_image(seg, gts)
    pri = np.mean([rand_score(g.ravel(), seg.ravel()) for g in gts])
    hits = 0.0
    for g in gts:
        for region in np.unique(g):
            inside = g == region
            hits += inside.sum() * max(np.logical_and(inside, seg == s).sum() / np.logical_or(inside, seg == s).sum()
                                       for s in np.unique(seg[inside]))
    assert score.pri == pytest.approx(pri) and score.covering == pytest.approx(hits / (len(gts) * seg.size))
    assert 0 < score.voi < 3 and score.covering < 1  # the other annotators disagree with the first


def test_the_merge_hierarchy_cuts_a_two_region_image_along_its_boundary():
    from scvae.downstream.region_merging import build_hierarchy
    from scvae.downstream.segmentation import FeatureGrid

    rng = np.random.default_rng(0)
    image = np.zeros((60, 80, 3), np.uint8)
    image[:, :40] = (200, 60, 40)
    image[:, 40:] = (40, 90, 200)
    image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
    texture = np.zeros((15, 20, 4), np.float32)  # one feature grid cell per 4 x 4 pixels
    texture[:, :10, 0], texture[:, 10:, 3] = 1.0, 1.0
    hierarchy = build_hierarchy(image, FeatureGrid(texture, 4, (60, 80)))
    halves = hierarchy.cut(2)
    assert len(np.unique(halves)) == 2 and (halves[:, :40] == halves[0, 0]).all() and (halves[:, 40:] == halves[0, -1]).all()
    assert len(np.unique(hierarchy.cut(1))) == 1
    assert len(np.unique(hierarchy.cut(5))) == min(5, int(hierarchy.superpixels.max()) + 1)


def test_a_photo_larger_than_the_working_size_is_merged_at_that_size_and_labelled_at_its_own():
    """By default the hierarchy is built with the shorter side at the codes' size (160 px), with about as
    many superpixels as at full size, and its superpixels are resized back to the photo: labels (H, W)."""
    from scvae.downstream.region_merging import CODE_SIZE, MergeOptions, build_hierarchy
    from scvae.downstream.segmentation import FeatureGrid

    rng = np.random.default_rng(2)
    image = np.zeros((2 * CODE_SIZE, 3 * CODE_SIZE, 3), np.uint8)
    image[:, :image.shape[1] // 2], image[:, image.shape[1] // 2:] = (200, 60, 40), (40, 90, 200)
    image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
    texture = np.zeros((CODE_SIZE // 4, 3 * CODE_SIZE // 8, 4), np.float32)  # the codes of the 160 px image
    texture[:, :texture.shape[1] // 2, 0], texture[:, texture.shape[1] // 2:, 3] = 1.0, 1.0
    grid = FeatureGrid(texture, 4, (CODE_SIZE, 3 * CODE_SIZE // 2))
    small, full = build_hierarchy(image, grid), build_hierarchy(image, grid, MergeOptions(work_size=None))
    assert small.superpixels.shape == full.superpixels.shape == image.shape[:2]
    assert 0.5 < small.n_superpixels / full.n_superpixels < 2
    halves = small.cut(2)
    middle = image.shape[1] // 2
    assert (halves[:, :middle] == halves[0, 0]).all() and (halves[:, middle:] == halves[0, -1]).all()
    assert halves[0, 0] != halves[0, -1]


def test_the_region_texture_is_encoded_with_the_region_margin():
    from scvae import SCVAE
    from scvae.downstream.region_merging import CODE_SIZE, atom_histograms
    from scvae.presets import REGION_DEFAULTS

    from .tiny import TINY_SCVAE

    texture = atom_histograms(SCVAE(**TINY_SCVAE))
    assert (texture.margin, texture.size, texture.space) == (REGION_DEFAULTS["margin"], CODE_SIZE, "codes")


def test_raw_merge_costs_by_hand():
    """Three regions in a row, sizes 1, 1, 2: the costs _merge computes, before any running maximum."""
    from scvae.downstream.region_merging import MergeOptions, _merge

    colour = np.array([[0.0, 0, 0], [0.1, 0, 0], [1.0, 0, 0]])
    edges = {(0, 1): [0.2, 1.0], (1, 2): [0.5, 1.0]}  # boundary strength summed along each, and its length
    merges, costs = _merge(3, np.array([1.0, 1.0, 2.0]), colour, None, edges, MergeOptions())
    # colour distance + 2 x mean boundary, times (harmonic size / area) ** 0.15; the second after 0 and 1 merged
    assert merges == [(0, 1), (0, 2)]
    assert costs == pytest.approx([(0.1 + 2 * 0.2) * 0.25 ** 0.15, (0.95 + 2 * 0.5) * 0.5 ** 0.15])


def test_cut_at_on_a_hand_built_hierarchy():
    from scvae.downstream.region_merging import Hierarchy

    hierarchy = Hierarchy(np.array([[0, 1], [2, 3]]), [(0, 1), (2, 3), (0, 2)], np.array([0.1, 0.5, 0.9]))
    assert hierarchy.cut_at(0.05).tolist() == [[0, 1], [2, 3]]
    assert hierarchy.cut_at(0.1).tolist() == [[0, 0], [2, 3]]  # a merge at exactly the level is done
    assert hierarchy.cut_at(0.7).tolist() == [[0, 0], [2, 2]]
    assert hierarchy.cut_at(5.0).tolist() == [[0, 0], [0, 0]]


def test_the_default_level_keeps_the_halves_of_a_two_colour_image_apart():
    from scvae.downstream.region_merging import DEFAULT_LEVEL, build_hierarchy
    from scvae.downstream.segmentation import FeatureGrid

    rng = np.random.default_rng(1)
    image = np.zeros((60, 80, 3), np.uint8)
    image[:, :40], image[:, 40:] = (200, 60, 40), (40, 90, 200)
    image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
    texture = np.zeros((15, 20, 4), np.float32)
    texture[:, :10, 0], texture[:, 10:, 3] = 1.0, 1.0
    hierarchy = build_hierarchy(image, FeatureGrid(texture, 4, (60, 80)))
    assert hierarchy.n_superpixels > 2 and len(hierarchy.levels) == hierarchy.n_superpixels - 1
    regions = hierarchy.cut_at(DEFAULT_LEVEL)  # the halves stay apart; slivers along the edge may remain
    assert not set(np.unique(regions[:, :40])) & set(np.unique(regions[:, 40:])) and len(np.unique(regions)) <= 4


def test_a_fixed_parameter_is_scored_apart_from_ods():
    """benchmark(..., fixed=p) reports the dataset scores at p, which need not be the ODS choice."""
    good, bad = ImageScore(9.0, 10.0, 0.9, 1.0), ImageScore(5.0, 10.0, 0.6, 2.0)
    result = benchmark([[bad, good], [bad, good]], [1, 2], fixed=1)
    assert result["ods"]["covering_parameter"] == 2 and result["fixed"] == {
        "parameter": 1, "covering": 0.5, "pri": 0.6, "voi": 2.0}
    assert "fixed" not in benchmark([[good]], [1])


def _bsds_layout(root, n=2):
    """A BSDS-style pair of folders: photos with a bright square, and .mat files with two annotators each."""
    from PIL import Image
    from scipy.io import savemat

    images, truths = root / "images", root / "truth"
    images.mkdir(parents=True), truths.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        photo = rng.integers(0, 60, (48, 64, 3)).astype(np.uint8)
        photo[10:34, 20:50] += 150
        Image.fromarray(photo).save(images / f"{i:03d}.jpg")
        square = np.ones((48, 64), np.uint16)
        square[10:34, 20:50] = 2
        coarse = np.ones((48, 64), np.uint16)
        cells = np.empty((1, 2), dtype=object)
        for j, seg in enumerate([square, coarse]):
            cells[0, j] = {"Segmentation": seg, "Boundaries": np.zeros_like(seg, bool)}
        savemat(truths / f"{i:03d}.mat", {"groundTruth": cells})
    return images, truths


def test_segment_eval_scores_bsds_ground_truth(tmp_path, capsys):
    """--ground-truth: several annotators per image, covering / PRI / VoI at ODS and OIS for each method."""
    import json

    from scvae.cli import main

    images, truths = _bsds_layout(tmp_path)
    out = tmp_path / "eval"
    code = main(["segment-eval", "--model", str(tmp_path / "unused"), "--images", str(images), "--ground-truth",
                 str(truths), "--methods", "felzenszwalb,pixels", "--overlays", "1", "--out", str(out), "--no-progress"])
    assert code == 0
    result = json.loads((out / "region_eval.json").read_text())
    assert result["n_images"] == 2 and set(result["methods"]) == {"felzenszwalb", "pixels"}
    pixels = result["methods"]["pixels"]
    assert pixels["ois"]["covering"] >= pixels["ods"]["covering"] > 0.7  # the square is easy for k-means
    assert "| pixels |" in (out / "region_eval.md").read_text() and (out / "overlays.png").stat().st_size > 1000
    assert "covering ODS" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    ([], "give one of --masks"),
    (["--masks", "x"], "give one of --masks"),
    (["--methods", "felzenszwalb,bogus"], "unknown bogus"),
])
def test_segment_eval_ground_truth_errors_leave_nothing(tmp_path, capsys, extra, message):
    from scvae.cli import main

    images, truths = _bsds_layout(tmp_path, n=1)
    argv = ["segment-eval", "--model", str(tmp_path / "unused"), "--images", str(images), "--out", str(tmp_path / "o")]
    argv += [] if extra == [] else ["--ground-truth", str(truths), *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "o").exists()
