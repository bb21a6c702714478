"""Class-folder source: names from folders, gray/RGB stacking, resizing, corrupt and empty folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medopt.config import DataConfig, PreprocessConfig
from medopt.data import DataError, load_dataset


def _cfg(root: Path, size: int = 16) -> DataConfig:
    return DataConfig(source="folder", path=str(root), preprocess=PreprocessConfig(image_size=size))


def _make_tree(root: Path, write_image, rgb_one: bool = False) -> None:
    for k, name in enumerate(("normal", "effusion")):
        for i in range(5):
            shape = (16, 16) if i % 2 else (10, 12)
            write_image(root / name / f"img{i}.png", np.full(shape, 40 * k + i, dtype=np.uint8))
    if rgb_one:
        write_image(root / "normal" / "color.jpg", np.dstack([np.full((16, 16), v, np.uint8) for v in (200, 0, 0)]))


def test_folder_loads_gray_with_sorted_class_names(tmp_path: Path, write_image) -> None:
    _make_tree(tmp_path, write_image)
    ds = load_dataset(_cfg(tmp_path))
    assert ds.class_names == ("effusion", "normal") and ds.task == "binary"
    assert ds.train.images.shape[1:] == (16, 16) and ds.channels == 1
    assert (len(ds.train), len(ds.val), len(ds.test)) == (8, 1, 1)  # 5 per class: 4/1/0 and 4/0/1
    assert ds.source == f"folder:{tmp_path}"
    all_images = np.concatenate([s.images for s in ds.splits().values()])
    all_labels = np.concatenate([s.labels for s in ds.splits().values()])
    # constant images stay constant through the resize; value 40*k+i identifies the class folder
    assert all((im == im[0, 0]).all() for im in all_images)
    folder_k = (all_images[:, 0, 0] >= 40).astype(int)  # effusion (k=1 in _make_tree) is class 0
    np.testing.assert_array_equal(all_labels, 1 - folder_k)


def test_one_rgb_image_makes_the_dataset_rgb(tmp_path: Path, write_image) -> None:
    _make_tree(tmp_path, write_image, rgb_one=True)
    ds = load_dataset(_cfg(tmp_path, size=8))
    assert ds.channels == 3 and ds.image_size == (8, 8)
    images = np.concatenate([s.images for s in ds.splits().values()])
    red = images[(images[:, 0, 0, 0] > 150) & (images[:, 0, 0, 1] < 50)]
    assert len(red) == 1  # the JPEG keeps its colour; gray PNGs were replicated to 3 equal channels
    gray = images[images[:, 0, 0, 0] < 150]
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()


@pytest.mark.parametrize("content", [b"not a png at all", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00"])
def test_corrupt_image_is_named(tmp_path: Path, write_image, content: bytes) -> None:
    _make_tree(tmp_path, write_image)
    (tmp_path / "normal" / "broken.png").write_bytes(content)
    with pytest.raises(DataError, match=r"broken\.png.*(corrupt|unreadable)"):
        load_dataset(_cfg(tmp_path))


def test_truncated_png_is_named(tmp_path: Path, write_image) -> None:
    _make_tree(tmp_path, write_image)
    good = write_image(tmp_path / "x" / "big.png", np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8))
    (tmp_path / "normal" / "cut.png").write_bytes(good.read_bytes()[:200])
    good.unlink()
    good.parent.rmdir()
    with pytest.raises(DataError, match=r"cut\.png"):
        load_dataset(_cfg(tmp_path))


def test_empty_class_folder(tmp_path: Path, write_image) -> None:
    _make_tree(tmp_path, write_image)
    (tmp_path / "atelectasis").mkdir()
    with pytest.raises(DataError, match=r"atelectasis.*no PNG/JPEG"):
        load_dataset(_cfg(tmp_path))


def test_missing_root_and_single_class(tmp_path: Path, write_image) -> None:
    with pytest.raises(DataError, match="not found"):
        load_dataset(_cfg(tmp_path / "absent"))
    write_image(tmp_path / "only" / "a.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match="at least 2 class"):
        load_dataset(_cfg(tmp_path))
