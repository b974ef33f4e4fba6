"""Segmentation: metrics against hand-made cases, masks in every supported format, the clustering pipeline."""
import re

import numpy as np
import pytest
import torch
from PIL import Image

from scvae import ScvaeError
from scvae.data.masks import load_mask, load_pair, pair_images_with_masks
from scvae.downstream import CodeFeatures, PixelFeatures, SegmentOptions, match_clusters, score_all, segment
from scvae.downstream.segmentation import FeatureGrid, refine_with_superpixels, upsample_labels
from scvae.downstream.segmentation_metrics import SegmentationScorer, paired_miou_difference
from scvae.models import SCVAE


def test_permuted_perfect_labels_score_one():
    target = np.repeat(np.arange(3), 20).reshape(6, 10)
    predicted = (target + 1) % 3  # same partition, other ids
    scores = score_all([(predicted, target)])
    assert scores["miou"] == pytest.approx(1.0) and scores["pixel_accuracy"] == pytest.approx(1.0)
    assert scores["ari"] == pytest.approx(1.0) and scores["nmi"] == pytest.approx(1.0)


def test_hand_computed_iou_with_an_unmatched_cluster_and_ignored_pixels():
    target = np.array([[0, 0, 0, 0, 1, 1, 1, 1, 9, 9]])
    predicted = np.array([[5, 5, 5, 7, 7, 7, 7, 8, 5, 7]])
    # Hungarian: 5 -> 0 (3 px), 7 -> 1 (3 px); cluster 8 is unmatched and labels its pixel wrong.
    assert match_clusters(predicted[0, :8], target[0, :8]) == {5: 0, 7: 1}
    scores = score_all([(predicted, target)], ignore=(9,))
    # class 0: I = 3, U = 4; class 1: I = 3, U = 5 (pixel 3 predicted 1 + its 4 true pixels)
    assert scores["per_class_iou"] == {"0": pytest.approx(3 / 4), "1": pytest.approx(3 / 5)}
    assert scores["miou"] == pytest.approx((3 / 4 + 3 / 5) / 2)
    assert scores["pixel_accuracy"] == pytest.approx(6 / 8)


def test_intersections_are_summed_over_images_before_the_iou():
    target = np.array([[0, 0, 1, 1]])
    good, bad = np.array([[0, 0, 1, 1]]), np.array([[0, 1, 1, 1]])
    scores = score_all([(good, target), (bad, target)])
    assert scores["per_class_iou"]["0"] == pytest.approx(3 / 4)  # (2 + 1) / (2 + 2)
    assert scores["per_class_iou"]["1"] == pytest.approx(4 / 5)  # (2 + 2) / (2 + 3)


def _scored(pairs):
    scorer = SegmentationScorer()
    for predicted, target in pairs:
        scorer.update(predicted, target)
    return scorer


def test_paired_bootstrap_of_the_miou_difference():
    rng = np.random.default_rng(0)
    targets = [np.tile(np.r_[np.zeros(10, int), np.ones(10, int)], (4, 1)) for _ in range(40)]
    flip = lambda t, p: np.where(rng.random(t.shape) < p, 1 - t, t)  # noqa: E731
    good = _scored([(flip(t, 0.05), t) for t in targets])
    bad = _scored([(flip(t, 0.25), t) for t in targets])
    d = paired_miou_difference(good, bad)
    assert d["difference"] == pytest.approx(good.result()["miou"] - bad.result()["miou"])
    assert 0 < d["ci"][0] < d["difference"] < d["ci"][1] and d["fraction_above_zero"] == 1.0
    same = paired_miou_difference(good, good)
    assert same["difference"] == 0 and same["ci"] == [0, 0]
    # two equally noisy methods: the interval straddles zero
    other = _scored([(flip(t, 0.05), t) for t in targets])
    tie = paired_miou_difference(good, other)
    assert tie["ci"][0] < 0 < tie["ci"][1]
    with pytest.raises(ScvaeError, match="same images"):
        paired_miou_difference(good, _scored([(targets[0], targets[0])]))


def test_overlay_clusters_take_the_colour_of_their_matched_class():
    from scvae.downstream.segmentation_eval import _recoloured_to_classes
    from scvae.evaluation.plots import colorize

    mask = np.array([[0, 0, 1, 1, 11]])
    labels = np.array([[2, 2, 0, 0, 1]])  # cluster 1 only covers an ignored pixel: unmatched, a spare id
    recoloured = _recoloured_to_classes(labels, mask, ignore=[11])
    assert recoloured.tolist() == [[0, 0, 1, 1, 12]]
    assert (colorize(recoloured)[0, :4] == colorize(mask)[0, :4]).all()


def test_masks_in_every_format(tmp_path):
    binary = np.zeros((20, 30), np.uint8)
    binary[5:15, 10:25] = 255
    Image.fromarray(binary).save(tmp_path / "horse.jpg", quality=75)  # lossy: in-between values at edges
    Image.fromarray(binary).save(tmp_path / "em.png")
    index = np.full((20, 30), 3, np.uint8)
    index[:, :5] = 11
    Image.fromarray(index).save(tmp_path / "camvid.png")
    colour = np.zeros((20, 30, 3), np.uint8)
    colour[:10] = (128, 64, 128)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    expected = (binary > 0).astype(np.int64)
    assert (load_mask(tmp_path / "horse.jpg") != expected).mean() < 0.02
    assert set(np.unique(load_mask(tmp_path / "horse.jpg"))) == {0, 1}
    assert np.array_equal(load_mask(tmp_path / "em.png"), expected)
    assert set(np.unique(load_mask(tmp_path / "camvid.png"))) == {3, 11}
    assert set(np.unique(load_mask(tmp_path / "colour.png"))) == {0, 128 * 65536 + 64 * 256 + 128}
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ScvaeError, match="unreadable mask"):
        load_mask(tmp_path / "bad.png")


def test_pairing_resizing_and_its_errors(tmp_path):
    (tmp_path / "img").mkdir(), (tmp_path / "gt").mkdir()
    photo = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    for name in ("a", "b", "c"):
        Image.fromarray(photo).save(tmp_path / "img" / f"{name}.jpg")
    for name in ("a", "b"):
        Image.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path / "gt" / f"{name}_mask.png")
    with pytest.raises(ScvaeError, match="--mask-suffix"):
        pair_images_with_masks(tmp_path / "img", tmp_path / "gt", mask_suffix="_gt")
    with pytest.warns(UserWarning, match="skipped 1 image"):
        pairs = pair_images_with_masks(tmp_path / "img", tmp_path / "gt", mask_suffix="_mask")
    assert [p[0].stem for p in pairs] == ["a", "b"]
    with pytest.warns(UserWarning) as caught:  # the suffix is found without being told
        assert pair_images_with_masks(tmp_path / "img", tmp_path / "gt") == pairs
    assert any("by the suffix '_mask'" in str(w.message) for w in caught)
    image, mask = load_pair(*pairs[0])
    assert image.shape == (30, 40, 3) and mask.shape == (30, 40)  # image resized to its mask
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "gt" / "a_mask.png")
    with pytest.raises(ScvaeError, match="aspect ratio"):
        load_pair(*pairs[0])


def _two_region_image() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    truth = np.zeros((48, 64), np.int64)
    truth[10:40, 20:52] = 1
    image = np.where(truth[..., None] == 1, [200, 60, 40], [40, 90, 200]).astype(np.float64)
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), truth


def test_pixel_kmeans_recovers_two_colour_regions():
    image, truth = _two_region_image()
    labels = segment(PixelFeatures(), image, SegmentOptions(k=2, position_weight=0.0))
    assert score_all([(labels, truth)])["miou"] > 0.99


def test_code_features_cover_any_image_size_and_upsample_back():
    torch.manual_seed(0)
    model = SCVAE(resolution=16, ch=8, ch_mult=[1, 2, 2], z_channels=16, n_atoms=36, max_active=6)
    image = np.random.default_rng(0).integers(0, 255, (37, 50, 3), dtype=np.uint8)
    grid = CodeFeatures(model)(image)
    assert grid.values.shape == (10, 13, 16) and grid.cell == 4 and grid.shape == (37, 50)  # D a: d channels
    codes = model.encode(torch.zeros(1, 3, 16, 16)).codes
    assert int((codes != 0).sum(1).max()) <= 6  # ... of codes with at most max_active atoms
    labels = segment(CodeFeatures(model), image, SegmentOptions(k=3))
    assert labels.shape == (37, 50) and set(np.unique(labels)) <= {0, 1, 2}
    # each cell covers a 4 x 4 block of pixels
    cells = np.arange(6).reshape(2, 3)
    up = upsample_labels(cells, FeatureGrid(np.zeros((2, 3, 1), np.float32), 4, (7, 10)), (7, 10))
    assert up[0, 0] == 0 and up[0, 4] == 1 and up[4, 9] == 5 and up.shape == (7, 10)


def test_superpixel_refinement_snaps_blocky_labels_to_edges():
    image, truth = _two_region_image()
    blocky = np.kron(truth[::8, ::8], np.ones((8, 8), np.int64))  # 8-px blocks
    blocky[8:16, 16:24] = 1 - blocky[8:16, 16:24]  # one wrong block on the boundary
    refined = refine_with_superpixels(blocky, image, cell=4)
    assert score_all([(refined, truth)])["miou"] > score_all([(blocky, truth)])["miou"]


@pytest.mark.parametrize("options, message", [(SegmentOptions(k=1), "k must be >= 2"),
                                              (SegmentOptions(position_weight=-1), "position weight"),
                                              (SegmentOptions(refine="crf"), "refine must be")])
def test_invalid_options_are_clear_errors(options, message):
    with pytest.raises(ScvaeError, match=message):
        segment(PixelFeatures(), np.zeros((8, 8, 3), np.uint8), options)


def test_whitening_lets_a_weak_but_bimodal_direction_decide():
    from scvae.downstream.segmentation import cluster_grid

    rng = np.random.default_rng(0)
    truth = np.zeros((20, 20), np.int64)
    truth[:, 10:] = 1
    values = np.stack([10 * rng.standard_normal((20, 20)), np.where(truth == 1, 1.0, -1.0)
                       + 0.1 * rng.standard_normal((20, 20))], -1).astype(np.float32)
    grid = FeatureGrid(values, 1, (20, 20))
    plain = cluster_grid(grid, SegmentOptions(k=2, position_weight=0))
    whitened = cluster_grid(grid, SegmentOptions(k=2, position_weight=0, whiten=2))
    assert score_all([(whitened, truth)])["miou"] == pytest.approx(1.0)
    assert score_all([(plain, truth)])["miou"] < 0.8  # the loud unimodal direction wins without whitening
    with pytest.raises(ScvaeError, match="whiten must be >= 0"):
        SegmentOptions(whiten=-1).validate()


def test_segment_accepts_gray_float_and_tensor_images_and_refuses_bad_ones():
    import skimage.data

    from scvae.downstream import PixelFeatures, SegmentOptions, segment

    photo = skimage.data.coffee()[:64, :96]
    options = SegmentOptions(k=3)
    reference = segment(PixelFeatures(), photo, options)
    assert np.array_equal(segment(PixelFeatures(), photo / 255.0, options), reference)  # floats in [0, 1]
    assert np.array_equal(segment(PixelFeatures(), torch.from_numpy(photo).permute(2, 0, 1), options), reference)
    gray = photo.mean(2).astype(np.uint8)
    assert segment(PixelFeatures(), gray, options).shape == gray.shape  # (H, W)
    for bad, message in [(photo * 2.0, "must be in [0, 1]"), (np.full((8, 8), np.nan), "NaN"),
                         (np.zeros((4, 8, 8, 3)), "expected an image"), ("photo.png", "expected an image array")]:
        with pytest.raises(ScvaeError, match=re.escape(message)):
            segment(PixelFeatures(), bad, options)
