"""Few-label segmentation: cell labels, counts and scores on cases with known answers, and the bench script."""
import numpy as np
import pytest

from scvae.downstream.few_label import cell_labels, few_label_segmentation, paired_margin, supervised_counts
from scvae.downstream.segmentation import CodeFeatures, FeatureGrid, KMeansCodes, PixelFeatures
from scvae.errors import ScvaeError


def test_cell_labels_read_the_mask_at_each_cell_centre():
    mask = np.zeros((8, 8), np.int64)
    mask[:, 4:] = 1
    mask[6:, :] = 2
    grid = FeatureGrid(np.zeros((2, 2, 1), np.float32), 4, (8, 8))
    assert cell_labels(mask, grid).tolist() == [[0, 1], [2, 2]]
    half = FeatureGrid(np.zeros((2, 2, 1), np.float32), 2, (4, 4))  # a working image half the mask's size
    assert cell_labels(mask, half).tolist() == [[0, 1], [2, 2]]


def test_supervised_counts_by_hand():
    predicted = np.array([[0, 0, 1], [1, 1, 2]])
    target = np.array([[0, 1, 1], [1, 2, 2]])
    assert supervised_counts(predicted, target, ()) == {0: (1, 2), 1: (2, 4), 2: (1, 2)}
    assert supervised_counts(predicted, target, (2,)) == {0: (1, 2), 1: (2, 3)}  # pixels labelled 2 left out


def test_upsampled_scores_put_the_boundary_where_the_two_cells_scores_cross():
    from scvae.downstream.segmentation import upsample_scores

    one = np.array([[0.0, 0.6]])  # class 1's probability at two 4-pixel cells, centred at x = 2 and 6
    scores = np.stack([1 - one, one], -1)
    grid = FeatureGrid(np.zeros((1, 2, 1), np.float32), 4, (1, 8))
    # linear between the centres, 0.5 is crossed at x = 2 + 4 * 0.5 / 0.6 = 5.33: pixel 4 (centre 4.5) stays 0
    assert upsample_scores(scores, grid, (1, 8)).tolist() == [[0, 0, 0, 0, 0, 1, 1, 1]]
    assert upsample_scores(scores, grid, (2, 16)).tolist() == [[0] * 10 + [1] * 6] * 2  # then nearest to the mask


def _cell_means(cell):
    """A feature grid of each cell x cell block's mean colour: boundaries fall inside cells."""
    def features(image):
        h, w = image.shape[0] // cell, image.shape[1] // cell
        blocks = image[:h * cell, :w * cell].reshape(h, cell, w, cell, 3).mean((1, 3)) / 255
        return FeatureGrid(blocks.astype(np.float32), cell, image.shape[:2])
    return features


def test_bilinear_upsampling_labels_boundaries_inside_cells_better_than_nearest():
    pairs = _two_colour_pairs()
    scores = {mode: few_label_segmentation({"cells": _cell_means(8)}, pairs, 1, draws=2, upsample=mode)["cells"].miou
              for mode in ("bilinear", "nearest")}
    assert scores["bilinear"] > scores["nearest"] + 0.02
    with pytest.raises(ScvaeError, match="upsample"):
        few_label_segmentation({"cells": _cell_means(8)}, pairs, 1, upsample="cubic")


def _two_colour_pairs(n=6):
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(n):
        mask = np.zeros((24, 32), np.int64)
        mask[:, 10 + i:] = 1  # the boundary moves, so position alone cannot label it
        image = np.where(mask[..., None] == 1, [200, 40, 40], [30, 60, 200]).astype(np.float64)
        pairs.append((np.clip(image + rng.normal(0, 5, image.shape), 0, 255).astype(np.uint8), mask))
    return pairs


def test_colour_features_label_a_two_colour_set_from_one_image_and_position_alone_does_not():
    pairs = _two_colour_pairs()

    def position_only(image):
        return FeatureGrid(np.zeros((*image.shape[:2], 1), np.float32), 1, image.shape[:2])

    results = few_label_segmentation({"pixels": PixelFeatures(), "position": position_only}, pairs, 1, draws=2)
    assert results["pixels"].miou > 0.99 and results["position"].miou < 0.9
    margin = paired_margin(results["pixels"], results["position"])
    assert margin["difference"] > 0 and margin["ci"][0] > 0
    with pytest.raises(ScvaeError, match="labelled images"):
        few_label_segmentation({"pixels": PixelFeatures()}, pairs, 6)


def test_kmeans_codes_encode_each_cell_with_the_fitted_centroids_and_label_a_two_colour_set():
    import torch

    pairs = _two_colour_pairs()
    images = [image for image, _ in pairs]
    codes = KMeansCodes(PixelFeatures(), n_centroids=8)
    with pytest.raises(ScvaeError, match="call fit"):
        codes(images[0])
    codes.fit(images)
    grid, pixels = codes(images[0]), PixelFeatures()(images[0])
    direct = codes.encoder(torch.from_numpy(pixels.values).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert grid.values.shape == (24, 32, 8) and np.allclose(grid.values, direct) and grid.cell == pixels.cell
    assert (grid.values >= 0).all() and (grid.values == 0).any()  # triangle codes: about half the centroids off
    results = few_label_segmentation({"k-means codes": codes}, pairs, 1, draws=2)
    assert results["k-means codes"].miou > 0.99


def test_hard_kmeans_codes_are_one_hot_at_the_largest_triangle_code():
    """Textons: each cell counts once, for the centroid whose triangle code is largest (the nearest one)."""
    images = [image for image, _ in _two_colour_pairs()]
    soft = KMeansCodes(PixelFeatures(), n_centroids=8).fit(images)
    hard = KMeansCodes(PixelFeatures(), n_centroids=8, hard=True).fit(images)
    triangle, onehot = soft(images[0]).values, hard(images[0]).values
    assert set(np.unique(onehot)) == {0.0, 1.0} and (onehot.sum(-1) == 1).all()
    assert (onehot.argmax(-1) == triangle.argmax(-1)).all()
    # by hand: whiten each cell with the fitted mean and ZCA matrix, then the nearest centroid in Euclidean distance
    encoder = hard.encoder
    cells = PixelFeatures()(images[0]).values.astype(np.float64)
    whitened = (cells - encoder.mean.double().numpy()) @ encoder.whiten.double().numpy()
    distances = np.linalg.norm(whitened[..., None, :] - encoder.centroids.double().numpy(), axis=-1)  # (h, w, K)
    assert (onehot.argmax(-1) == distances.argmin(-1)).all()
    assert len(np.unique(onehot.argmax(-1))) > 1  # more than one texton in use: the check can fail


def test_textons_of_a_model_are_the_nearest_centroid_of_its_latent_cells(tiny_run):
    """The region method's textons: one-hot grids at the region method's size, each cell at the centroid that
    a hard k-means code of the same latent cells picks."""
    from scvae.downstream.region_merging import CODE_SIZE, textons
    from scvae.training import load_model

    model = load_model(tiny_run)
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(2)]
    texture = textons(model, photos, n_textons=6)
    grid = texture(photos[1])
    cells = CodeFeatures(model, CODE_SIZE, space="latent", margin=4)
    same = KMeansCodes(cells, 6, hard=True).fit(photos)(photos[1])
    assert grid.values.shape[-1] == 6 and (grid.values.sum(-1) == 1).all()
    assert np.array_equal(grid.values, same.values) and grid.cell == same.cell
    assert texture.name == "6 textons of the latent"


def test_code_features_in_the_latent_space_are_the_models_latent(tiny_run):
    import torch

    from scvae.training import load_model

    model = load_model(tiny_run)
    image = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    grid = CodeFeatures(model, space="latent", margin=0)(image)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        latent = model.latent(x)[0].permute(1, 2, 0).numpy()
    assert np.allclose(grid.values, latent, atol=1e-5)
    with pytest.raises(ScvaeError, match="space must be"):
        CodeFeatures(model, space="pixels")


def test_the_bench_script_runs_on_a_model_and_a_small_dataset(tiny_run, tmp_path):
    import json
    import sys
    from pathlib import Path

    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import few_label_segmentation as bench

    root = tmp_path / "data"
    (root / "weizmann_horse" / "rgb").mkdir(parents=True)
    (root / "weizmann_horse" / "figure_ground").mkdir()
    for i, (image, mask) in enumerate(_two_colour_pairs(4)):
        Image.fromarray(image).save(root / "weizmann_horse" / "rgb" / f"horse{i:03d}.jpg")
        Image.fromarray((mask * 255).astype(np.uint8)).save(root / "weizmann_horse" / "figure_ground" / f"horse{i:03d}.jpg")
    out = tmp_path / "few.json"
    assert bench.main(["--runs", str(tiny_run), "--data-root", str(root), "--datasets", "horse", "--labelled", "1",
                       "--draws", "1", "--size", "24", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["datasets"]["horse"]["1"]
    assert rows["pixels + position"]["miou"] > 0.9 and "minus_pixels" in rows["run"]
    assert bench.main(["--runs", str(tiny_run), "--data-root", str(root), "--datasets", "horse", "--labelled", "1",
                       "--draws", "1", "--size", "24", "--spaces", "latent,kmeans", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["datasets"]["horse"]["1"]
    assert {"run (latent)", "run (kmeans)"} <= set(rows) and 0 <= rows["run (kmeans)"]["miou"] <= 1
    assert bench.main(["--runs", str(tiny_run), "--data-root", str(root), "--datasets", "horse",
                       "--spaces", "pixels"]) == 2
