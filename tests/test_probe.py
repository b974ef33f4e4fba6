"""Representation probes: the features, poolings and anchors against direct computations, the probes on
data with known answers, and ``scvae probe`` in a temp dir (its refusals change nothing on disk)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scvae.cli import main
from scvae.data.labelled import load_labelled, stratified_split
from scvae.downstream.features import FeatureSpec, JoinedFeatures, parse_features, pool, soft_threshold_atoms
from scvae.downstream.patch_kmeans import PatchKMeans, extract_patches, fit_patch_kmeans
from scvae.downstream.probe import bootstrap_interval, knn_probe, linear_probe, paired_from_dicts, paired_interval
from scvae.errors import ScvaeError
from scvae.sparse import dct_dictionary

from .test_output_safety import _snapshot


def test_pooling_against_hand_sums():
    maps = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4) - 10  # signs on both sides
    first = maps[0, 0]
    quadrants = [first[:2, :2].sum(), first[:2, 2:].sum(), first[2:, :2].sum(), first[2:, 2:].sum()]
    assert pool(maps, "quadrant-sum")[0].tolist() == [float(q) for q in quadrants]
    assert pool(maps, "pyramid-sum")[0].tolist() == [float(first.sum())] + [float(q) for q in quadrants]
    assert pool(maps, "pyramid-max")[0, 0] == first.max()
    split = pool(maps, "split-quadrant-sum" .removeprefix("split-"), split=True)[0]
    positive, negative = first.clamp_min(0), (-first).clamp_min(0)
    assert split[0] == positive[:2, :2].sum() and split[4] == negative[:2, :2].sum()
    assert pool(maps, "flat").shape == (2, 16)
    rooted = pool(maps, "quadrant-sum", sqrt=True)[0]  # signed square roots of the sums: -58 -> -sqrt(58)
    assert rooted.tolist() == pytest.approx([float(q.sign() * q.abs().sqrt()) for q in quadrants])


def test_feature_names_round_trip_and_bad_names_are_one_line():
    spec = FeatureSpec.parse("codes:split-pyramid-sum")
    assert (spec.source, spec.pooling, spec.split, spec.name) == ("codes", "pyramid-sum", True, "codes:split-pyramid-sum")
    assert FeatureSpec.parse("pixels").name == "pixels:flat"
    assert FeatureSpec.parse("kmeans@2:quadrant-sum").density == 2
    assert FeatureSpec.parse("kmeans@2:quadrant-sum").name == "kmeans@2:quadrant-sum"
    coarse = FeatureSpec.parse("kmeans@2/2:sqrt-quadrant-sum")
    assert (coarse.density, coarse.scale, coarse.name) == (2, 2, "kmeans@2/2:sqrt-quadrant-sum")
    assert [s.name for s in parse_features("latent:flat+kmeans/2")] == ["latent:flat", "kmeans/2:flat"]
    rooted = FeatureSpec.parse("codes@2:split-sqrt-quadrant-sum")
    assert (rooted.split, rooted.sqrt, rooted.pooling, rooted.name) == (True, True, "quadrant-sum",
                                                                       "codes@2:split-sqrt-quadrant-sum")
    for bad, needle in [("colour:flat", "unknown feature source"), ("codes:mean", "unknown pooling"),
                        ("latent@0:flat", "positive integer"), ("pixels@2:flat", "only a model's"),
                        ("kmeans/0:flat", "scale must be a positive integer"), ("coates/2:flat", "only a model's")]:
        with pytest.raises(ScvaeError, match=needle):
            FeatureSpec.parse(bad)


def test_soft_threshold_atoms_against_a_direct_computation():
    torch.manual_seed(0)
    latent = torch.randn(2, 16, 3, 3)
    d = dct_dictionary(16, 36)
    out = soft_threshold_atoms(latent, d, alpha=0.3)
    z = latent.permute(0, 2, 3, 1).reshape(-1, 16).double().numpy()
    s = z @ d.double().numpy()
    expected = np.sign(s) * np.maximum(np.abs(s) - 0.3 * np.linalg.norm(z, axis=1, keepdims=True), 0)
    np.testing.assert_allclose(out.permute(0, 2, 3, 1).reshape(-1, 36).numpy(), expected, atol=1e-5)
    orthonormal = dct_dictionary(16)  # complete basis, no threshold: the code is D^T z and D (D^T z) = z
    back = torch.einsum("dk,bkhw->bdhw", orthonormal, soft_threshold_atoms(latent, orthonormal, alpha=0.0))
    assert torch.allclose(back, latent, atol=1e-5)


def test_patches_whitening_and_triangle_codes_against_direct_computations():
    from sklearn.metrics import pairwise_distances

    torch.manual_seed(0)
    maps = torch.randn(3, 2, 5, 5)
    patches = extract_patches(maps, 2)
    assert patches.shape == (3, 16, 8)
    assert torch.equal(patches[1, 5], maps[1, :, 1:3, 1:3].reshape(-1))  # position (1, 1) of a 4 x 4 grid
    # a 1-cell patch of a mixed signal: ZCA leaves eigenvalues lambda / (lambda + eps) on the sample
    mixed = (torch.randn(400, 3) @ torch.tensor([[2.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.2]])).T
    encoder = fit_patch_kmeans(mixed.reshape(1, 3, 20, 20), n_centroids=4, patch=1, n_patches=400,
                               contrast_eps=None)
    white = encoder.whitened(extract_patches(mixed.reshape(1, 3, 20, 20), 1)[0].double().float())
    raw_eigen = torch.linalg.eigvalsh(torch.cov(mixed.double()))
    assert torch.allclose(torch.linalg.eigvalsh(torch.cov(white.T.double())).sort().values,
                          (raw_eigen / (raw_eigen + 0.1)).sort().values, atol=1e-4)
    # the triangle code of hand-set centroids against scikit-learn's distances
    fixed = PatchKMeans(mean=torch.zeros(8), whiten=torch.eye(8), centroids=torch.randn(5, 8), patch=2, stride=1,
                        contrast_eps=None)
    codes = fixed(maps)
    dist = pairwise_distances(patches.reshape(-1, 8).numpy(), fixed.centroids.numpy())
    expected = np.maximum(dist.mean(1, keepdims=True) - dist, 0)
    np.testing.assert_allclose(codes.permute(0, 2, 3, 1).reshape(-1, 5).numpy(), expected, atol=1e-4)


def test_probes_on_data_with_known_answers():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 60)
    separable = rng.normal(size=(180, 20)) + 12.0 * np.eye(3, 20)[labels]
    train, test = stratified_split(labels, 0.25)
    predictions, c = linear_probe(separable[train], labels[train], separable[test])
    assert (predictions == labels[test]).mean() == 1.0 and c in (1e-3, 1e-2, 1e-1, 1.0)
    assert (knn_probe(separable[train], labels[train], separable[test], k=5) == labels[test]).mean() == 1.0
    noise = rng.normal(size=(180, 20))  # features that carry no label: near chance (1/3)
    predictions, _ = linear_probe(noise[train], labels[train], noise[test])
    assert (predictions == labels[test]).mean() < 0.6


def test_cross_validated_c_matches_scikit_learns_grid_search():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from scvae.downstream.probe import CV_C_GRID, CV_FOLDS

    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 80)
    noisy = rng.normal(size=(240, 30)) * rng.uniform(0.5, 3, 30) + 1.5 * np.eye(3, 30)[labels]  # C matters
    predictions, c = linear_probe(noisy[:200], labels[:200], noisy[200:], selection="cv")
    search = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, tol=1e-3)),
                          {"logisticregression__C": list(CV_C_GRID)},
                          cv=StratifiedKFold(CV_FOLDS, shuffle=True, random_state=0)).fit(noisy[:200], labels[:200])
    assert c == pytest.approx(search.best_params_["logisticregression__C"])
    assert (predictions == search.predict(noisy[200:])).mean() > 0.97  # the same C, refit on all 200
    with pytest.raises(ScvaeError, match="unknown C selection"):
        linear_probe(noisy[:200], labels[:200], noisy[200:], selection="test")
    from scvae.cli.app import build_parser
    from scvae.downstream.probe import C_SELECTIONS

    choices = next(a.choices for a in build_parser()._subparsers._group_actions[0].choices["probe"]._actions
                   if a.dest == "c_selection")
    assert tuple(choices) == C_SELECTIONS  # the CLI spells the selections out so that --help needs no torch


def test_knn_votes_and_ties():
    train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [-1.0, -1.0]])
    labels = np.array([0, 0, 1, 1, 2])
    assert knn_probe(train, labels, np.array([[1.0, 0.05], [0.05, 1.0]]), k=2).tolist() == [0, 1]


def test_bootstrap_intervals():
    assert bootstrap_interval(np.ones(50, dtype=bool)) == (1.0, 1.0)
    correct = np.arange(400) % 4 == 0  # accuracy 0.25
    lo, hi = bootstrap_interval(correct)
    assert lo < 0.25 < hi and hi - lo < 0.1
    assert paired_interval(correct, correct) == (0.0, 0.0, 0.0)
    diff, lo, hi = paired_interval(np.ones(400, dtype=bool), correct)
    assert diff == 0.75 and lo < 0.75 < hi


def _labelled_folder(root: Path, per_class: int = 12) -> Path:
    """Two classes of 32 px crops from two real photos: a probe must tell them apart."""
    import skimage.data

    for name, photo in (("astronaut", skimage.data.astronaut()), ("coffee", skimage.data.coffee())):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(photo[i * 20:i * 20 + 48, i * 15:i * 15 + 48]).save(root / name / f"{i:02d}.png")
    return root


def test_labelled_folders_and_the_stratified_split(tmp_path):
    data = load_labelled(_labelled_folder(tmp_path / "d", 10), 32)
    assert data.images.shape == (20, 3, 32, 32) and data.classes == ["astronaut", "coffee"]
    train, test = stratified_split(data.labels, 0.2, seed=3)
    assert len(test) == 4 and sorted(data.labels[test].tolist()) == [0, 0, 1, 1] and not set(train) & set(test)
    (tmp_path / "other" / "astronaut").mkdir(parents=True)
    (tmp_path / "other" / "cat").mkdir()
    for sub in ("astronaut", "cat"):
        Image.new("RGB", (8, 8)).save(tmp_path / "other" / sub / "x.png")
    with pytest.raises(ScvaeError, match="classes differ"):
        load_labelled(tmp_path / "other", 32, classes=data.classes)


def test_scvae_probe_cli_scores_anchors_and_a_model(tiny_run, tmp_path, capsys):
    data = _labelled_folder(tmp_path / "d")
    out = tmp_path / "probe.json"
    assert main(["probe", "--data", str(data), "--test-fraction", "0.25", "--features",
                 "pixels:flat,coates:quadrant-sum", "--c-selection", "cv", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["c_selection"] == "cv"
    assert [r["feature"] for r in result["rows"]] == ["pixels:flat", "coates:quadrant-sum"]
    assert result["n_test"] == 6 and all(r["linear"] >= 5 / 6 for r in result["rows"])  # two photos apart
    pixels, coates = (np.array([c == "1" for c in r["correct"]]) for r in result["rows"])
    assert [pixels.mean(), coates.mean()] == [r["linear"] for r in result["rows"]]
    diff, lo, hi = paired_from_dicts(result, "pixels:flat", result, "coates:quadrant-sum")
    assert diff == pytest.approx(pixels.mean() - coates.mean()) and lo <= diff <= hi
    with pytest.raises(ScvaeError, match="same test images"):
        paired_from_dicts(result, "pixels:flat", {**result, "test_labels_sha1": "0"}, "pixels:flat")
    with pytest.raises(ScvaeError, match="no per-image scores of 'codes:flat'"):
        paired_from_dicts(result, "pixels:flat", result, "codes:flat")
    assert main(["probe", "--model", str(tiny_run), "--data", str(data), "--test-data", str(data), "--features",
                 "codes:flat,latent:split-pyramid-max,atoms:split-quadrant-sum,kmeans:quadrant-sum+latent/2:flat",
                 "--no-knn"]) == 0
    table = capsys.readouterr().out
    assert "| atoms:split-quadrant-sum |" in table and "| kmeans:quadrant-sum+latent/2:flat |" in table


@pytest.mark.parametrize("argv, needle", [
    (["--features", "codes:flat"], "need --model"),
    (["--features", "pixels:avg"], "unknown pooling"),
    (["--features", "pixels:flat+codes/2:flat"], "need --model"),
    (["--features", "pixels:flat", "--c-selection", "test"], "invalid choice"),
    (["--test-fraction", "1.5", "--features", "pixels:flat"], "test fraction"),
    (["--features", "pixels:flat", "--json", "{json}"], "already exists"),
])
def test_scvae_probe_refusals_change_nothing(argv, needle, tmp_path, capsys):
    data = _labelled_folder(tmp_path / "d", 4)
    existing = tmp_path / "out" / "probe.json"
    existing.parent.mkdir()
    existing.write_text("{}")
    argv = [a.replace("{json}", str(existing)) for a in argv]
    before = _snapshot(tmp_path)
    assert main(["probe", "--data", str(data), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("scvae: error:") and needle in err and "\n" not in err, err
    assert _snapshot(tmp_path) == before


def test_a_dense_grid_interleaves_shifted_copies_and_holds_the_plain_grid(tiny_run):
    from scvae.downstream.features import model_maps
    from scvae.training import load_model

    model = load_model(tiny_run)
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    plain = model_maps(model, images, "latent")
    dense = model_maps(model, images, "latent", density=2)
    assert dense.shape == (*plain.shape[:2], 2 * plain.shape[2], 2 * plain.shape[3])
    assert torch.allclose(dense[:, :, 1::2, 1::2], plain, atol=1e-6)  # the unshifted copy's cells
    f = model.downsampling_factor
    half = f // 2  # the copy moved down and right by half a cell holds the cells between the plain ones
    shifted = torch.nn.functional.pad(images, (f, f, f, f), mode="reflect")[:, :, f - half:f - half + 16,
                                                                             f - half:f - half + 16]
    assert torch.allclose(dense[:, :, 0::2, 0::2], model_maps(model, shifted, "latent"), atol=1e-6)
    with pytest.raises(ScvaeError, match="must divide"):
        model_maps(model, images, "latent", density=f + 1)


def test_a_coarser_scale_encodes_the_downscaled_image_and_joined_features_concatenate(tiny_run):
    from scvae.downstream.features import FeatureExtractor, downscale, model_maps
    from scvae.training import load_model

    model = load_model(tiny_run)
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    # the reference downscale: PIL's antialiased bilinear resize, channel by channel on float images
    halved = torch.stack([torch.stack([torch.from_numpy(np.array(Image.fromarray(channel.numpy(), mode="F").resize(
        (16, 16), Image.Resampling.BILINEAR))) for channel in image]) for image in images])
    assert torch.allclose(downscale(images, 2, model.downsampling_factor), halved, atol=1e-5)
    coarse = model_maps(model, images, "latent", scale=2)
    assert torch.allclose(coarse, model_maps(model, halved, "latent"), atol=1e-5)
    assert coarse.shape[2:] == tuple(s // 2 for s in model_maps(model, images, "latent").shape[2:])
    joined = JoinedFeatures(parse_features("latent:flat+latent/2:split-quadrant-sum"), model)
    assert joined.name == "latent:flat+latent/2:split-quadrant-sum"
    parts = [FeatureExtractor(FeatureSpec.parse(name), model)(images)
             for name in ("latent:flat", "latent/2:split-quadrant-sum")]
    assert torch.equal(joined.fit(images)(images), torch.cat(parts, dim=1))
    with pytest.raises(ScvaeError, match="whole number"):
        model_maps(model, images[:, :, :30, :30], "latent", scale=2)  # 15 px: not a whole number of 2 px cells


def test_the_decoder_map_is_the_codes_read_through_the_dictionary_and_k_means_encodes_it(tiny_run):
    """``decoder``: D a for SC-VAE, computed here by hand from the codes and the atoms; ``decoder-kmeans``: the
    k-means triangle codes fitted on that map, not on the latent."""
    from scvae.downstream.features import LATENT_KMEANS, FeatureExtractor, model_maps
    from scvae.downstream.patch_kmeans import fit_patch_kmeans
    from scvae.training import load_model

    model = load_model(tiny_run)
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    codes = model.encode(images).codes  # (B, K, h, w) sparse codes
    by_hand = torch.einsum("dk,bkhw->bdhw", model.bottleneck.lista.dictionary, codes)
    decoder = model_maps(model, images, "decoder")
    assert torch.allclose(decoder, by_hand, atol=1e-5) and not torch.allclose(decoder, model.latent(images), atol=1e-3)
    feature = FeatureExtractor(FeatureSpec.parse("decoder-kmeans:quadrant-sum"), model).fit(images)
    assert torch.equal(feature.encoder.centroids, fit_patch_kmeans(decoder, **LATENT_KMEANS, contrast_eps=None).centroids)
    assert feature(images).shape == (4, feature.encoder.n_centroids * 4)  # quadrant sums
