import warnings

import numpy as np
from PIL import Image

import pytest
import torch

from scvae import ScvaeError
from scvae.data import builtin_datasets, find_images, folder_datasets, image_batch, split_indices


def test_folder_is_read_recursively_in_all_formats(image_folder):
    paths = find_images(image_folder)
    assert len(paths) == 12 and {p.suffix for p in paths} == {".png", ".jpg", ".bmp"}
    train, val = folder_datasets(image_folder, 32, val_ratio=0.25)
    assert (len(train), len(val)) == (9, 3)
    g = torch.Generator().manual_seed(0)
    x = train.batch([0, 1, 2], g)
    assert x.shape == (3, 3, 32, 32) and -1 <= x.min() and x.max() <= 1
    gray = folder_datasets(image_folder, 16, channels=1, val_ratio=0.25)[0].batch([0])
    assert gray.shape == (1, 1, 16, 16)


def test_split_is_deterministic_and_disjoint():
    a = split_indices(100, 0.1)
    assert a == split_indices(100, 0.1)
    assert not set(a[0]) & set(a[1]) and len(a[1]) == 10


def test_corrupt_and_truncated_images_are_skipped_and_counted(image_folder):
    (image_folder / "broken.png").write_bytes(b"not an image at all")
    good = sorted(image_folder.rglob("*.jpg"))[0].read_bytes()
    (image_folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train, val = folder_datasets(image_folder, 32, val_ratio=0.25)
    assert len(train) + len(val) == 12
    assert any("skipped 2 unreadable image(s)" in str(w.message) for w in caught)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(ScvaeError, match="no such data folder"):
        find_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScvaeError, match="no images found"):
        find_images(tmp_path / "empty")


def test_builtin_photos_hold_out_their_bottom_band():
    train, val = builtin_datasets(32)
    assert len(train) >= 10 and len(val) >= 50
    # every training photo stops one crop above its bottom; validation tiles are exactly that band
    for img in train.images:
        assert img.shape[0] == 4 * 32 - 32 or min(img.shape[:2]) >= 3 * 32
    assert all(v.shape[:2] == (32, 32) for v in val.images)


def test_image_batch_center_crops(image_folder):
    paths = find_images(image_folder)[:2]
    assert image_batch(paths, 24).shape == (2, 3, 24, 24)


def test_data_scale_makes_crops_patches_of_larger_images(image_folder):
    train, val = folder_datasets(image_folder, 16, val_ratio=0.25, scale=2.5)
    assert min(min(img.shape[:2]) for img in train.images) == 40  # shorter side 2.5 x 16
    assert train.batch([0], torch.Generator().manual_seed(0)).shape == (1, 3, 16, 16)
    with pytest.raises(ScvaeError, match="data_scale must be >= 1"):
        folder_datasets(image_folder, 16, scale=0.5)


def test_non_finite_float_images_and_decompression_bombs_are_unreadable(tmp_path, monkeypatch):
    import pytest
    from PIL import Image

    from scvae import ScvaeError
    from scvae.data import load_image

    arr = np.ones((8, 8), dtype=np.float32)
    arr[2, 3] = np.nan
    Image.fromarray(arr, mode="F").save(tmp_path / "nan.tiff")
    with pytest.raises(ScvaeError, match="nan.tiff: unreadable image .*NaN"):
        load_image(tmp_path / "nan.tiff")
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64 x 64 is then over twice the limit: a "bomb"
    with pytest.raises(ScvaeError, match="big.png: unreadable image"):
        load_image(tmp_path / "big.png")


_MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I", "I;16", "F"]


@pytest.mark.parametrize("mode", _MODES)
def test_every_pil_mode_loads_or_is_refused_in_one_line(tmp_path, mode):
    """Every PIL mode, in every format that can store it: an image of the right shape and range, or one
    ScvaeError naming the file; never a traceback and never a blank image."""
    import skimage.data

    from scvae.data.images import load_image
    from scvae.errors import ScvaeError

    photo = Image.fromarray(skimage.data.astronaut()[:40, :48])
    image = (Image.fromarray(np.asarray(photo.convert("L")).astype(np.uint16) * 257) if mode == "I;16"
             else photo.convert(mode))
    saved = 0
    for ext in ("png", "tiff", "webp", "bmp", "gif"):
        path = tmp_path / f"image.{ext}"
        try:
            image.save(path)
        except (OSError, ValueError, KeyError):
            continue  # this format cannot store this mode
        saved += 1
        for channels in (1, 3):
            try:
                arr = load_image(path, channels)
            except ScvaeError as exc:
                assert str(path) in str(exc) and "\n" not in str(exc)
                continue
            assert arr.shape == (40, 48, channels) and arr.dtype == np.uint8 and arr.max() > arr.min()
    assert saved


def test_mosaic_lays_crops_out_row_by_row_and_is_validated():
    from scvae.config import TrainConfig
    from scvae.data.datasets import tile_mosaic

    crops = torch.arange(8.0).reshape(8, 1, 1, 1).expand(8, 1, 2, 2)
    mosaic = tile_mosaic(crops, 2)
    assert mosaic.shape == (2, 1, 4, 4)
    assert mosaic[0, 0, ::2, ::2].tolist() == [[0, 1], [2, 3]] and mosaic[1, 0, 2:, 2:].unique().tolist() == [7]
    assert tile_mosaic(crops, 1) is crops
    rolled = tile_mosaic(crops, 2, torch.Generator().manual_seed(0))  # seams moved, content the same
    assert any(torch.equal(rolled[0], mosaic[0].roll((dy, dx), (1, 2))) for dy in range(4) for dx in range(4))
    assert sorted(rolled.flatten().tolist()) == sorted(mosaic.flatten().tolist())
    with pytest.raises(ScvaeError, match="mosaic must be a positive integer m with m\\^2 dividing batch_size"):
        TrainConfig(batch_size=32, mosaic=3).validate()


def test_masking_greys_whole_cells_at_the_ratio_and_is_validated():
    from scvae.config import TrainConfig
    from scvae.data.datasets import mask_cells

    images = torch.rand(3, 2, 16, 16) + 0.5  # no pixel is 0 before masking
    masked = mask_cells(images, 0.25, 4, torch.Generator().manual_seed(0))
    cells = (masked == 0).reshape(3, 2, 4, 4, 4, 4).permute(0, 2, 4, 1, 3, 5).flatten(3)  # (B, rows, cols, pixels)
    assert torch.all(cells.all(-1) | ~cells.any(-1))  # a cell is masked whole, in every channel, or not at all
    assert cells.all(-1).sum((1, 2)).tolist() == [4, 4, 4]  # 25 % of the 16 cells of each image
    assert not torch.equal(cells[0], cells[1])  # chosen per image
    assert torch.equal(masked[masked != 0], images[masked != 0])
    assert torch.equal(masked, mask_cells(images, 0.25, 4, torch.Generator().manual_seed(0)))
    assert mask_cells(images, 0.01, 4, torch.Generator()) is images  # under one cell: nothing to mask
    with pytest.raises(ScvaeError, match="mask_ratio must be in \\[0, 1\\)"):
        TrainConfig(mask_ratio=1.0).validate()


def test_paired_views_keep_the_first_half_and_follow_it():
    from scvae.data.datasets import paired_views

    g = torch.Generator().manual_seed(0)
    images = torch.rand(8, 3, 16, 16, generator=g) * 2 - 1
    views = paired_views(images, torch.Generator().manual_seed(1))
    assert views.shape == images.shape and torch.equal(views[:4], images[:4])
    assert views[4:].abs().max() <= 1 and not torch.equal(views[4:], images[:4])
    assert torch.equal(views, paired_views(images, torch.Generator().manual_seed(1)))
    # no crop and no jitter: each second view is its own source, flipped or not, and both happen
    plain = paired_views(images, torch.Generator().manual_seed(1), min_scale=1.0, jitter=0.0)[4:]
    flipped = [torch.allclose(v, x.flip(-1), atol=1e-5) for v, x in zip(plain, images[:4])]
    kept = [torch.allclose(v, x, atol=1e-5) for v, x in zip(plain, images[:4])]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)
    grey = paired_views(images[:, :1], torch.Generator().manual_seed(1))  # one channel: no saturation jitter
    assert grey.shape == (8, 1, 16, 16)
