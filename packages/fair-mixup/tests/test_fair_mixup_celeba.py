"""The CelebA path on a tiny fake CelebA folder (random 8x8 images, 3 attributes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from papershelf.core.testing import assert_close
from papershelf.fair_mixup.celeba import (
    CelebAImages,
    CelebAModel,
    read_celeba_attributes,
    train_celeba,
)


@pytest.fixture
def fake_celeba(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "img_align_celeba").mkdir()
    names = ["Attractive", "Male", "Smiling"]
    rows, parts = [], []
    for i in range(32):
        male, attractive = i % 2, (i // 2) % 2  # every (group, label) cell is filled
        fname = f"{i:06d}.jpg"
        pix = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
        Image.fromarray(pix).save(tmp_path / "img_align_celeba" / fname)
        vals = [1 if attractive else -1, 1 if male else -1, -1]
        rows.append(f"{fname} " + " ".join(f"{v:2d}" for v in vals))
        parts.append(f"{fname} {0 if i < 24 else (1 if i < 28 else 2)}")
    (tmp_path / "list_attr_celeba.txt").write_text(
        f"{len(rows)}\n" + " ".join(names) + "\n" + "\n".join(rows) + "\n"
    )
    (tmp_path / "list_eval_partition.txt").write_text("\n".join(parts) + "\n")
    return tmp_path


def test_attributes_and_images(fake_celeba):
    attrs = read_celeba_attributes(fake_celeba)
    assert attrs.values.shape == (32, 3) and attrs.names == ("Attractive", "Male", "Smiling")
    assert attrs.column("Male").tolist() == [0, 1] * 16
    assert np.bincount(attrs.partition).tolist() == [24, 4, 4]
    images = CelebAImages(fake_celeba, attrs.filenames, image_size=8)
    x = images.batch([0, 3])
    assert x.shape == (2, 3, 8, 8) and x.dtype == torch.float32
    # ImageNet normalisation of a [0, 1] image: channel 0 lies in [-0.485/0.229, 0.515/0.229].
    assert float(x[:, 0].min()) >= -0.485 / 0.229 - 1e-6
    assert float(x[:, 0].max()) <= 0.515 / 0.229 + 1e-6
    with pytest.raises(ValueError, match="unknown CelebA attribute"):
        attrs.column("Bald")


@pytest.mark.parametrize(("method", "mode"), [("mixup", "dp"), ("manifold_mixup", "eo")])
def test_train_celeba_with_a_tiny_trunk(fake_celeba, method, mode):
    attrs = read_celeba_attributes(fake_celeba)
    images = CelebAImages(fake_celeba, attrs.filenames, image_size=8)
    torch.manual_seed(0)
    model = CelebAModel(trunk=nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()), width=4)
    hist = train_celeba(
        model, images, attrs, method=method, mode=mode, lam=1.0, epochs=2, batch_size=2,
        eval_every=1, generator=torch.Generator().manual_seed(0), show_progress=False,
    )  # fmt: skip
    assert [h["epoch"] for h in hist] == [1, 2]
    assert {"val_ap", "test_dp_gap", "test_eo_gap"} <= set(hist[-1])
    out = model(images.batch([0, 1]))
    assert out.shape == (2, 1)
    assert_close(model.head(model.features(images.batch([0, 1]))), out)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="list_attr_celeba"):
        read_celeba_attributes(tmp_path)
    with pytest.raises(FileNotFoundError, match="image folder"):
        CelebAImages(tmp_path, ["a.jpg"])


def test_default_trunk_without_torchvision_says_what_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torchvision(name, *args, **kwargs):
        if name == "torchvision":
            raise ImportError("no torchvision")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchvision)
    with pytest.raises(ImportError, match="pip install torchvision"):
        CelebAModel()
