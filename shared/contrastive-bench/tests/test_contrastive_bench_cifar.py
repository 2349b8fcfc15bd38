"""The paper-scale SimCLR harness: data readers, configuration, and the whole path on tiny data."""

from __future__ import annotations

import math
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from papershelf.contrastive_bench.cifar import (
    OVERRIDES_ENV,
    SMOKE_OVERRIDES,
    PaperScaleConfig,
    SimCLRNet,
    load_data,
    read_cifar10,
    read_stl10,
    run_grid,
    write_fake_cifar10,
    write_fake_stl10,
)

TINY = SMOKE_OVERRIDES


def _ctx(seeds=(0,)):
    return SimpleNamespace(device="cpu", seeds=seeds, progress=lambda it, **kw: it)


def test_cifar10_reader_keeps_pixel_order_and_labels(tmp_path):
    folder = write_fake_cifar10(tmp_path, per_batch=6, seed=1)
    with (folder / "data_batch_2").open("rb") as fh:
        raw = pickle.load(fh)
    data = read_cifar10(tmp_path)
    assert len(data.pretrain) == len(data.train) == 30 and len(data.test) == 6
    assert data.train.shape == (30, 32, 32, 3) and data.train.dtype == np.uint8
    img, row = data.train[6 + 4], raw["data"][4]  # batch 2, image 4
    # rows are channel-major: red plane, green plane, blue plane, each row by row
    for h, w, c in [(0, 0, 0), (3, 17, 1), (31, 2, 2)]:
        assert img[h, w, c] == row[c * 1024 + h * 32 + w]
    assert data.train_labels.tolist()[:12] == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]
    assert data.test_labels.dtype == np.int64


def test_stl10_reader_reads_column_major_images(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)  # (n, h, w, c)
    folder = write_fake_stl10(tmp_path, n_train=3, n_test=2, n_unlabeled=4)
    images.transpose(0, 3, 2, 1).tofile(folder / "train_X.bin")  # stored (c, w, h)
    data = read_stl10(tmp_path)
    assert len(data.pretrain) == 7 and len(data.train) == 3 and len(data.test) == 2
    np.testing.assert_array_equal(np.stack([data.train[i] for i in range(3)]), images)
    np.testing.assert_array_equal(data.pretrain[1], images[1])
    assert data.pretrain[5].shape == (96, 96, 3)
    assert data.train_labels.tolist() == [0, 1, 2]  # stored 1..10
    assert len(read_stl10(tmp_path, unlabeled=False).pretrain) == 3


def test_missing_data_names_the_folder_and_the_files(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py.*data_batch_1.*test_batch"):
        read_cifar10(tmp_path)
    (tmp_path / "stl10_binary").mkdir()
    with pytest.raises(FileNotFoundError, match=r"stl10_binary lacks train_X.bin"):
        read_stl10(tmp_path)
    monkeypatch.delenv("PAPERSHELF_DATA", raising=False)
    with pytest.raises(RuntimeError, match="PAPERSHELF_DATA"):
        load_data(PaperScaleConfig())
    monkeypatch.setenv("PAPERSHELF_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "cifar-10-batches-py")):
        load_data(PaperScaleConfig())


def test_cifar_batches_may_hold_only_arrays(tmp_path):
    folder = write_fake_cifar10(tmp_path, per_batch=2)
    with (folder / "test_batch").open("wb") as fh:
        pickle.dump({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1], "x": print}, fh)
    with pytest.raises(pickle.UnpicklingError, match=r"builtins\.print"):
        read_cifar10(tmp_path)
    with (folder / "test_batch").open("wb") as fh:
        pickle.dump({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, fh)
    with pytest.raises(ValueError, match=r"\(n, 3072\)"):
        read_cifar10(tmp_path)


def test_config_defaults_are_the_paper_recipe_and_overrides_apply(monkeypatch):
    cfg = PaperScaleConfig()
    assert (cfg.arch, cfg.epochs, cfg.batch_size, cfg.lr, cfg.feature_dim) == (
        "resnet50",
        400,
        256,
        1e-3,
        128,
    )
    assert (cfg.linear_epochs, cfg.linear_batch_size, cfg.linear_protocol) == (100, 512, "official")
    assert cfg.is_paper_scale
    monkeypatch.delenv(OVERRIDES_ENV, raising=False)
    assert cfg.with_overrides() == cfg
    monkeypatch.setenv(OVERRIDES_ENV, '{"arch": "resnet18", "epochs": 2, "max_steps": 3}')
    small = cfg.with_overrides()
    assert (small.arch, small.epochs, small.max_steps, small.batch_size) == ("resnet18", 2, 3, 256)
    assert not small.is_paper_scale
    assert cfg.with_overrides({"dataset": "stl10"}).dataset == "stl10"


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ('{"epoch": 1}', r"unknown PaperScaleConfig fields: \['epoch'\]"),
        ("[1, 2]", "JSON object"),
        ("{epochs: 1}", "not valid JSON"),
        ('{"dataset": "mnist"}', "dataset must be one of"),
        ('{"batch_size": 1}', "batch_size must be an integer >= 2"),
        ('{"max_steps": 0}', "max_steps must be None or an integer >= 1"),
        ('{"linear_protocol": "knn"}', "linear_protocol must be one of"),
        ('{"lr": -1}', "lr must be a non-negative number"),
        ('{"arch": "vit_b_16"}', "arch must name a torchvision ResNet"),
    ],
)
def test_bad_overrides_name_the_field(monkeypatch, overrides, match):
    monkeypatch.setenv(OVERRIDES_ENV, overrides)
    with pytest.raises(ValueError, match=match):
        PaperScaleConfig().with_overrides()


def test_network_has_the_cifar_stem_and_official_head():
    net = SimCLRNet(PaperScaleConfig(arch="resnet18", proj_hidden=16, feature_dim=8))
    assert net.backbone.conv1.kernel_size == (3, 3) and net.backbone.conv1.stride == (1, 1)
    assert isinstance(net.backbone.maxpool, torch.nn.Identity)
    h, z = net.eval()(torch.randn(2, 3, 32, 32))
    assert h.shape == (2, 512) and z.shape == (2, 8)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="resnet1000"):
        SimCLRNet(PaperScaleConfig(arch="resnet1000"))


def _nt_xent(z1, z2, t=0.5):
    z = torch.cat([z1, z2])
    n = len(z1)
    sim = (z @ z.T / t).fill_diagonal_(-math.inf)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return torch.nn.functional.cross_entropy(sim, target)


@pytest.mark.parametrize(("dataset", "protocol"), [("stl10", "official"), ("cifar10", "features")])
def test_whole_path_runs_on_tiny_fake_data(tmp_path, dataset, protocol):
    write_fake_cifar10(tmp_path, per_batch=4)
    write_fake_stl10(tmp_path, n_train=4, n_test=2, n_unlabeled=4)
    cfg = PaperScaleConfig(
        dataset=dataset, linear_protocol=protocol, data_root=str(tmp_path), **TINY
    )
    acc = run_grid(_ctx(), [("nt-xent", _nt_xent, 0.0), ("noisy", _nt_xent, 0.5)], cfg)
    assert set(acc) == {"nt-xent", "noisy"}
    for vals in acc.values():
        assert len(vals) == 1 and all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in vals)


def test_batch_larger_than_the_data_is_an_error(tmp_path):
    write_fake_cifar10(tmp_path, per_batch=2)
    cfg = PaperScaleConfig(data_root=str(tmp_path), **{**TINY, "batch_size": 64})
    with pytest.raises(ValueError, match="batch_size=64 exceeds the 8 SimCLR images"):
        run_grid(_ctx(), [("nt-xent", _nt_xent, 0.0)], cfg)


def test_readers_equal_torchvisions_on_the_same_files(tmp_path, monkeypatch):
    # torchvision's dataset classes check md5 sums; with the check off they read our files
    from torchvision.datasets import CIFAR10, STL10, cifar

    monkeypatch.setattr(CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)
    monkeypatch.setattr(STL10, "_check_integrity", lambda self: True)
    write_fake_cifar10(tmp_path, per_batch=3, seed=2)
    write_fake_stl10(tmp_path, n_train=3, n_test=2, n_unlabeled=2, seed=3)
    ours = read_cifar10(tmp_path)
    for train, images, labels in [
        (True, ours.train, ours.train_labels),
        (False, ours.test, ours.test_labels),
    ]:
        tv = CIFAR10(str(tmp_path), train=train)
        np.testing.assert_array_equal(images, tv.data)
        assert labels.tolist() == tv.targets
    assert tv.classes[0] == "airplane"
    ours = read_stl10(tmp_path)
    for split, images, labels in [
        ("train+unlabeled", ours.pretrain, None),
        ("train", ours.train, ours.train_labels),
        ("test", ours.test, ours.test_labels),
    ]:
        tv = STL10(str(tmp_path), split=split)
        assert len(images) == len(tv.data)
        for i in range(len(tv.data)):
            np.testing.assert_array_equal(images[i], tv.data[i].transpose(1, 2, 0))  # CHW
        if labels is not None:
            assert labels.tolist() == tv.labels.tolist()
