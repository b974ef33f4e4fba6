"""The oriented texture gradient of a code map (scvae.downstream.texture_gradient), on maps with known edges."""
import numpy as np
import pytest

from scvae.downstream.region_merging import MergeOptions, build_hierarchy
from scvae.downstream.segmentation import FeatureGrid
from scvae.downstream.texture_gradient import half_disc_kernels, texture_gradient, texture_gradient_image


def two_textures(h: int = 12, w: int = 16, vertical: bool = True) -> np.ndarray:
    """(h, w, 4) codes: atoms 0 and 1 fire on one side of the middle, atoms 2 and 3 on the other, with signs."""
    values = np.zeros((h, w, 4), np.float32)
    left = np.zeros((h, w), bool)
    if vertical:
        left[:, : w // 2] = True
    else:
        left[: h // 2] = True
    values[left, 0], values[left, 1] = 1.0, -0.5
    values[~left, 2], values[~left, 3] = -0.7, 0.3
    return values


@pytest.mark.parametrize("radius", [1, 2, 4])
def test_half_discs_are_disjoint_mirror_halves_of_equal_size(radius):
    kernels = half_disc_kernels(radius, 8)
    assert kernels.shape == (8, 2, 2 * radius + 1, 2 * radius + 1)
    for first, second in kernels:
        assert first.sum() == second.sum() > 0
        assert not (first * second).any()
        np.testing.assert_array_equal(first, second[::-1, ::-1])  # point reflection through the centre


def test_the_vertical_kernel_splits_left_from_right():
    first, second = half_disc_kernels(2, 2)[1]  # theta = pi / 2: the line is vertical
    assert first[:, :2].any() and not first[:, 2:].any()  # the left half, the centre column excluded
    assert second[:, 3:].any() and not second[:, :3].any()


@pytest.mark.parametrize("vertical", [True, False])
def test_a_texture_edge_scores_one_on_the_edge_and_zero_far_from_it(vertical):
    gradient = texture_gradient(two_textures(vertical=vertical), radius=2)
    profile = gradient[6] if vertical else gradient[:, 8]
    middle = len(profile) // 2
    # The disc centred on either cell next to the edge, cut along it, has one texture in each half.
    assert profile[middle - 1] == pytest.approx(1.0, abs=1e-5) or profile[middle] == pytest.approx(1.0, abs=1e-5)
    assert profile[0] == pytest.approx(0.0, abs=1e-6) and profile[-1] == pytest.approx(0.0, abs=1e-6)
    assert np.all(np.diff(profile[: middle - 1]) >= -1e-6)  # it rises towards the edge


def test_a_uniform_texture_has_no_gradient_even_at_the_borders():
    values = np.tile(np.array([0.2, -1.0, 0.0, 0.5], np.float32), (9, 11, 1))
    np.testing.assert_allclose(texture_gradient(values, radius=3), 0.0, atol=1e-6)


def test_the_image_map_follows_the_edge_at_the_image_size():
    grid = FeatureGrid(two_textures(), cell=4, shape=(48, 64))
    image_map = texture_gradient_image(grid, (96, 128))
    assert image_map.shape == (96, 128)
    column = image_map[48]
    assert 56 <= int(np.argmax(column)) <= 72  # the edge is at x = 64 in the original image
    assert column[:8].max() < 0.05 and column[-8:].max() < 0.05


def test_the_texture_gradient_separates_two_textures_of_the_same_colour():
    """Two halves of one grey, told apart only by their codes: with the texture gradient the last merge, the
    one joining the halves, costs more than without it."""
    image = np.full((48, 64, 3), 128, np.uint8)
    image[::2, ::2] = 120  # a faint pattern, so that the superpixels are not one region
    grid = FeatureGrid(two_textures(), cell=4, shape=(48, 64))
    options = MergeOptions(texture_weight=0.0)
    without = build_hierarchy(image, grid, options)
    with_gradient = build_hierarchy(image, grid, MergeOptions(texture_weight=0.0, texture_gradient_weight=1.0))
    assert with_gradient.levels[-1] > without.levels[-1]
