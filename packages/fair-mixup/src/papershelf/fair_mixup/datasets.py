"""The UCI Adult data set, read and encoded as in the Fair Mixup experiments.

The canonical UCI files ``adult.data`` and ``adult.test`` (Becker & Kohavi 1996,
https://doi.org/10.24432/C5XW20, CC BY 4.0) ship gzip-compressed inside this package
(``papershelf/fair_mixup/data/``, see ``DATA-NOTICE.md`` there), so everything runs offline;
pass ``path`` to read your own copy instead.

Encoding (official ``adult/dataset.py``, re-implemented without pandas/aif360): drop rows
with a missing occupation or native country (45,222 rows remain), keep five continuous
columns and one-hot ``workclass``, ``marital-status``, ``occupation``, ``relationship`` plus
``race_ White``; the sensitive attribute is ``sex_ Male`` (removed from the inputs); the
label is income > 50K. Each seed shuffles 80/20 into train/test, the validation set is the
first ``len(test)`` rows of train, continuous columns are standardised on train+val and
quantised into 10 quantile bins fitted on train.

``preprocessing="fixed"`` (default) fits the bin edges *per column* and keeps every binary
column as one 0/1 input (85 inputs). ``preprocessing="official"`` reproduces the official
encoding bit for bit, including its bug: ``DataQuantize`` fits edges on the first
continuous column (age) and reuses them for the other four, and every binary column is
one-hot encoded again into two columns (120 inputs).
"""

from __future__ import annotations

import functools
import gzip
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np

from papershelf.core.validation import check_choice, check_int

__all__ = ["AdultSplits", "AdultTable", "load_adult", "read_adult"]

_HEADERS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "y",
)
CONTINUOUS = ("age", "education-num", "capital-gain", "capital-loss", "hours-per-week")
_ONE_HOT = ("workclass", "marital-status", "occupation", "relationship")
N_BINS = 10


@dataclass(frozen=True)
class AdultTable:
    """The Adult rows before splitting.

    Attributes
    ----------
    features : ndarray, shape (n, 40)
        Five raw continuous columns, then the 0/1 binary columns (one-hot categories and
        ``race_ White``); ``sex`` is *not* among them.
    feature_names : tuple of str, length 40
    y : ndarray of int64, shape (n,)
        Income > 50K.
    a : ndarray of int64, shape (n,)
        Sensitive attribute, ``sex == Male``.
    """

    features: np.ndarray
    feature_names: tuple[str, ...]
    y: np.ndarray
    a: np.ndarray


@dataclass(frozen=True)
class AdultSplits:
    """One seed's train/validation/test split, encoded for the MLP.

    Attributes
    ----------
    X_train, X_val, X_test : ndarray of float32, shape (n_split, d)
        ``d`` = 85 (``"fixed"``) or 120 (``"official"``).
    y_train, y_val, y_test : ndarray of int64, shape (n_split,)
    a_train, a_val, a_test : ndarray of int64, shape (n_split,)
    feature_names : tuple of str, length d
    """

    X_train: np.ndarray
    y_train: np.ndarray
    a_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    a_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    a_test: np.ndarray
    feature_names: tuple[str, ...]


def _open_text(directory: Path | None, name: str) -> str:
    if directory is None:
        blob = resources.files("papershelf.fair_mixup").joinpath("data", name + ".gz")
        return gzip.decompress(blob.read_bytes()).decode("utf-8")
    plain, packed = directory / name, directory / (name + ".gz")
    if plain.is_file():
        return plain.read_text(encoding="utf-8")
    if packed.is_file():
        with gzip.open(packed, "rt", encoding="utf-8") as fh:
            return fh.read()
    raise FileNotFoundError(f"path={str(directory)!r} holds neither {name} nor {name}.gz")


def _parse(text: str) -> list[list[str]]:
    rows = []
    for line in io.StringIO(text):
        line = line.strip()
        if not line or line.startswith("|"):  # blank lines and adult.test's comment line
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != len(_HEADERS):
            raise ValueError(f"malformed Adult row with {len(fields)} fields: {line[:80]!r}")
        rows.append(fields)
    return rows


def read_adult(path: str | Path | None = None) -> AdultTable:
    """Read ``adult.data`` + ``adult.test`` (plain or ``.gz``) into an :class:`AdultTable`.

    Parameters
    ----------
    path : str or Path, optional
        A folder holding the two UCI files; the copy vendored in this package by default.

    Returns
    -------
    table : AdultTable
        45,222 rows for the canonical files.
    """
    if path is None:
        return _read_vendored()
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"path={str(directory)!r} is not a folder")
    return _read(directory)


@functools.lru_cache(maxsize=1)
def _read_vendored() -> AdultTable:
    table = _read(None)
    for arr in (table.features, table.y, table.a):
        arr.setflags(write=False)  # shared by every caller of the cache
    return table


def _read(directory: Path | None) -> AdultTable:
    rows = _parse(_open_text(directory, "adult.data")) + _parse(_open_text(directory, "adult.test"))
    col = {h: i for i, h in enumerate(_HEADERS)}
    # Official filter: a missing occupation or native country (workclass '?' implies both).
    rows = [r for r in rows if r[col["occupation"]] != "?" and r[col["native-country"]] != "?"]
    if not rows:
        raise ValueError("no Adult rows left after dropping missing values")
    cont = np.array([[float(r[col[c]]) for c in CONTINUOUS] for r in rows], dtype=np.float64)
    blocks, names = [cont], list(CONTINUOUS)
    for c in _ONE_HOT:  # one column per value present, sorted like pandas.get_dummies
        values = np.array([r[col[c]] for r in rows])
        cats = sorted(set(values.tolist()))
        blocks.append((values[:, None] == np.array(cats)[None, :]).astype(np.float64))
        names += [f"{c}_ {v}" for v in cats]
    blocks.append(np.array([[r[col["race"]] == "White"] for r in rows], dtype=np.float64))
    names.append("race_ White")
    y = np.array([r[col["y"]].rstrip(".") == ">50K" for r in rows], dtype=np.int64)
    a = np.array([r[col["sex"]] == "Male" for r in rows], dtype=np.int64)
    return AdultTable(np.concatenate(blocks, axis=1), tuple(names), y, a)


def _bin_edges(x: np.ndarray) -> np.ndarray:
    return np.quantile(x, np.arange(0.0, 1.0 + 1 / N_BINS, 1 / N_BINS))


def _quantize_one_hot(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    idx = np.clip(np.digitize(x, edges), 1, N_BINS) - 1
    return np.eye(N_BINS)[idx]


def _encode(
    x: np.ndarray, names: tuple[str, ...], edges: list[np.ndarray], official: bool
) -> tuple[np.ndarray, list[str]]:
    blocks, out_names = [], []
    for i, c in enumerate(CONTINUOUS):
        blocks.append(_quantize_one_hot(x[:, i], edges[i]))
        out_names += [f"{c}_bin{b}" for b in range(N_BINS)]
    binary = x[:, len(CONTINUOUS) :]
    if official:
        # [1 - v, v] per binary column, interleaved as the official np.eye(2)[v] does.
        two = np.stack([1.0 - binary, binary], axis=2).reshape(len(x), -1)
        blocks.append(two)
        for n in names[len(CONTINUOUS) :]:
            out_names += [f"{n}=0", f"{n}=1"]
    else:
        blocks.append(binary)
        out_names += list(names[len(CONTINUOUS) :])
    return np.concatenate(blocks, axis=1), out_names


def load_adult(
    path: str | Path | None = None,
    *,
    seed: int = 0,
    preprocessing: Literal["fixed", "official"] = "fixed",
) -> AdultSplits:
    """Adult split and encoded for one seed, following the official protocol.

    Parameters
    ----------
    path : str or Path, optional
        Folder with ``adult.data`` and ``adult.test`` (plain or ``.gz``); the vendored copy
        by default.
    seed : int
        Seed of the 80/20 shuffle (the official ``np.random.seed(seed)`` permutation, so the
        rows of each split are the official ones).
    preprocessing : {"fixed", "official"}
        ``"fixed"``: per-column bin edges, binary columns as single 0/1 inputs (85 inputs).
        ``"official"``: the official encoding, bug included (120 inputs); see the module
        docstring.

    Returns
    -------
    splits : AdultSplits
        Train 27,132, validation 9,045 and test 9,045 rows for the canonical files.
    """
    check_choice("preprocessing", preprocessing, ("fixed", "official"))
    seed = check_int("seed", seed, low=0, high=2**32 - 1)
    table = read_adult(path)
    n = table.features.shape[0]
    order = np.random.RandomState(int(seed)).permutation(n)  # == aif360's split(shuffle=True)
    n_train = int(0.8 * n)
    x, y, a = table.features[order], table.y[order], table.a[order]
    x_tr, x_te = x[:n_train].copy(), x[n_train:].copy()
    k = len(CONTINUOUS)
    mean, std = x_tr[:, :k].mean(0), x_tr[:, :k].std(0)
    x_tr[:, :k] = (x_tr[:, :k] - mean) / std
    x_te[:, :k] = (x_te[:, :k] - mean) / std
    n_te = n - n_train
    x_val, x_tr = x_tr[:n_te], x_tr[n_te:]
    y_tr, y_val, y_te = y[n_te:n_train], y[:n_te], y[n_train:]
    a_tr, a_val, a_te = a[n_te:n_train], a[:n_te], a[n_train:]
    official = preprocessing == "official"
    if official:
        edges = [_bin_edges(x_tr[:, 0])] * k  # the official bug: age's edges for all five
    else:
        edges = [_bin_edges(x_tr[:, i]) for i in range(k)]
    enc = [_encode(part, table.feature_names, edges, official) for part in (x_tr, x_val, x_te)]
    names = tuple(enc[0][1])
    f32 = [e[0].astype(np.float32) for e in enc]
    return AdultSplits(f32[0], y_tr, a_tr, f32[1], y_val, a_val, f32[2], y_te, a_te, names)
