"""Parity with numbers computed by running the official code (chingyaoc/InfoOT @ 352efd2).

The fixture ``data/infoot_official_reference.json`` holds only inputs and outputs (how it was
made: ``data/README.md``). Source 40 and target 30 points from 3-component 2-D mixtures, the
target rotated and shifted, 5 unseen queries; the official ``solve``, ``project`` (training
source, both methods) and ``conditional_score`` (unseen queries).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from papershelf.core.testing import assert_close
from papershelf.infoot import FusedInfoOT, InfoOT, conditional_projection

REF = json.loads((Path(__file__).parent / "data" / "infoot_official_reference.json").read_text())
INPUTS = {k: np.asarray(v, dtype=np.float64) for k, v in REF["inputs"].items()}
CASES = [k for k, v in REF["cases"].items() if isinstance(v, dict)]


def _fit(name: str, tol: float | None):
    case = REF["cases"][name]
    p = case["params"]
    Xs = INPUTS["Xs"]
    if name.startswith("fused"):
        ys = INPUTS["ys"].astype(int) if p["labels"] else None
        est = FusedInfoOT(
            h=p["h"], lam=p["lam"], reg=p["reg"], max_iter=p["max_iter"], tol=tol,
            oos_bandwidth="query",
        )  # fmt: skip
        Xt = INPUTS["Xt"]
        return est.fit(Xs, ys, Xt), Xt, case
    Xt = INPUTS["Xt3"] if p.get("target") == "Xt3" else INPUTS["Xt"]
    est = InfoOT(h=p["h"], reg=p["reg"], max_iter=p["max_iter"], tol=tol, oos_bandwidth="query")
    return est.fit(Xs, Xt=Xt), Xt, case


@pytest.mark.parametrize("name", CASES)
def test_parity_with_official_code(name):
    """Fixed iteration count (tol=None): coupling, projections and scores equal the official ones."""
    est, Xt, case = _fit(name, tol=None)
    assert est.n_iter_ == case["params"]["max_iter"]
    assert_close(est.coupling_, case["P"], rtol=1e-6, atol=1e-12)
    assert_close(est.transform(INPUTS["Xs"], method="barycentric"), case["barycentric"], rtol=1e-6)
    assert_close(est.transform(INPUTS["Xs"], method="conditional"), case["conditional"], rtol=1e-6)
    score = est.conditional_score(INPUTS["Xq"])
    assert_close(score, case["score_queries"], rtol=1e-6, atol=1e-12)
    assert_close(
        est.transform(INPUTS["Xq"], method="conditional"), case["conditional_queries"], rtol=1e-6
    )
    assert_close(conditional_projection(score, Xt), case["conditional_queries"], rtol=1e-6)
    # the column-marginal error of the truncated Sinkhorn is the official one too
    col_err = np.abs(est.coupling_.sum(0) - 1 / Xt.shape[0]).sum()
    assert col_err == pytest.approx(case["col_l1_error"], rel=1e-6)


@pytest.mark.parametrize("name", ["fused_labels", "plain_3d"])
def test_early_stop_keeps_official_numbers(name):
    """The default outer stop (tol=1e-13) ends at the fixed point with the same plan."""
    est, _, case = _fit(name, tol=1e-13)
    assert est.n_iter_ < case["params"]["max_iter"]
    ref = np.asarray(case["P"])
    assert np.abs(est.coupling_ - ref).max() <= 1e-12 * ref.max()


def test_lam_zero_is_entropic_ot_in_official_code_too():
    # recorded from the official FusedInfoOT(lam=0) against ot.sinkhorn on the same cost
    assert REF["cases"]["fused_lam0_check"] == 0.0
