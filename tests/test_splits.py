"""Group-aware held-out splits and the near-duplicate warning."""
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from scvae.data import folder_datasets
from scvae.data.splits import group_keys, near_duplicates, split_groups
from scvae.errors import ScvaeError


def test_group_keys():
    root = Path("/data")
    paths = [root / "seqA" / "0001TP_006690.png", root / "seqB" / "Seq05VD-f00000.jpg", root / "x.png"]
    assert group_keys(paths, root, "folder") == ["seqA", "seqB", "."]
    assert group_keys(paths, root, "prefix") == ["0001TP", "Seq05VD", "x"]
    with pytest.raises(ScvaeError, match="split_group"):
        group_keys(paths, root, "date")


def test_split_groups_keeps_groups_whole_and_near_the_ratio():
    keys = ["a"] * 50 + ["b"] * 30 + ["c"] * 10 + ["d"] * 10
    train, val = split_groups(keys, 0.2, seed=0)
    assert sorted(train + val) == list(range(100)) and not {keys[i] for i in train} & {keys[i] for i in val}
    assert 0 < len(val) <= 20 and split_groups(keys, 0.2, seed=0) == (train, val)
    train, val = split_groups(["big"] * 9 + ["small"] * 3, 0.1)  # no group fits 10 %: the smallest one
    assert {i for i in val} == {9, 10, 11}
    with pytest.raises(ScvaeError, match="at least 2 groups"):
        split_groups(["one"] * 5, 0.2)


def test_near_duplicates_are_found_and_distinct_images_are_not():
    rng = np.random.default_rng(0)
    train = [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(5)]
    copy = np.clip(train[3].astype(int) + rng.integers(-3, 4, train[3].shape), 0, 255).astype(np.uint8)
    other = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    found = near_duplicates(train, [other, copy])
    assert [(v, t) for v, t, _ in found] == [(1, 3)] and found[0][2] < 0.03


def test_folder_split_holds_out_a_whole_folder(image_folder):
    train, val = folder_datasets(image_folder, 16, 3, val_ratio=0.4, split_group="folder")
    folders = {p.stem: p.parent.parent.name for p in image_folder.rglob("*.*")}
    assert len({folders[n] for n in val.names}) == 1
    assert not {folders[n] for n in val.names} & {folders[n] for n in train.names}


def test_a_validation_image_copied_from_training_is_reported(image_folder, tmp_path):
    source = sorted(image_folder.rglob("*.jpg"))[0]
    val_dir = tmp_path / "val"
    val_dir.mkdir()
    shutil.copy(source, val_dir / "held_out.jpg")
    with pytest.warns(UserWarning, match=f"1 of 1 validation images have a near-duplicate in training "
                                         f"\\(e.g. held_out ~ {source.stem}"):
        folder_datasets(image_folder, 16, 3, val_data=str(val_dir))
