import os

import numpy as np
import pytest

from papershelf.core import io
from papershelf.core.progress import progress
from papershelf.core.runtime import (
    describe_hardware,
    make_generator,
    make_rng,
    package_versions,
    resolve_device,
)
from papershelf.core.testing import assert_close


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    io.atomic_write_json(target, {"a": 1})
    assert target.read_text() == '{\n  "a": 1\n}\n'
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's private 0600

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(io.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        io.atomic_write_text(target, "half")
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_atomic_write_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        io.atomic_write_json(tmp_path / "x.json", {"a": float("nan")})
    assert not (tmp_path / "x.json").exists()


def test_save_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    path = io.save_figure(fig, tmp_path / "fig")
    assert path.suffix == ".png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_seeding_is_reproducible():
    import torch

    g1, g2 = make_generator(5), make_generator(5)
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))
    assert make_rng(1).random() == make_rng(1).random()
    rng = make_rng(2)
    assert make_rng(rng) is rng


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "3", True])
def test_bad_seed(bad):
    with pytest.raises((TypeError, ValueError), match="seed"):
        make_rng(bad)
    with pytest.raises((TypeError, ValueError), match="seed"):
        make_generator(bad)


def test_devices():
    import torch

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in {"cpu", "cuda"}
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")


def test_environment():
    assert "CPU cores" in describe_hardware()
    v = package_versions(["numpy", "no-such-dist-xyz"])
    assert v["numpy"] == np.__version__ and v["no-such-dist-xyz"] == "not installed"


def test_progress_silent_off_terminal(monkeypatch):
    monkeypatch.delenv("PAPERSHELF_PROGRESS", raising=False)
    bar = progress(range(3), total=3)
    assert list(bar) == [0, 1, 2]
    monkeypatch.setenv("PAPERSHELF_PROGRESS", "1")
    bar = progress(range(2), desc="x")
    assert type(bar).__name__ == "tqdm"
    assert list(bar) == [0, 1]
    bar.close()


def test_assert_close_mixes_numpy_and_torch():
    import torch

    assert_close(torch.tensor([1.0, 2.0]), np.array([1.0, 2.0]))
    with pytest.raises(AssertionError):
        assert_close(torch.tensor([1.0]), np.array([1.1]))


def test_data_root_reads_papershelf_data(monkeypatch, tmp_path):
    from papershelf.core.io import DATA_ENV, data_root

    assert DATA_ENV == "PAPERSHELF_DATA"
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_root() == tmp_path
    monkeypatch.setenv(DATA_ENV, "")
    assert data_root() is None
    monkeypatch.delenv(DATA_ENV)
    assert data_root() is None
