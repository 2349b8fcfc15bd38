import json
import math

import pytest

from papershelf.core.records import (
    ResultRecord,
    format_value,
    read_results,
    records_from_json,
    records_to_json,
    results_table,
)


def rec(**kw):
    base = dict(package="demo", experiment="exp", metric="acc", values=[0.8, 0.9])
    base.update(kw)
    return ResultRecord(**base)


def test_mean_std():
    r = rec(values=[1.0, 2.0, 3.0])
    assert r.mean == 2.0
    assert r.std == pytest.approx(1.0)
    assert rec(values=[5.0]).std == 0.0


@pytest.mark.parametrize(
    ("kw", "status"),
    [
        (dict(paper_value=0.8), "reproduced"),
        (dict(paper_value=0.9, tolerance=0.1), "within tolerance"),
        (dict(paper_value=0.9, tolerance=0.01), "not reproduced"),
        (dict(paper_value=0.9, higher_is_better=False), "reproduced"),
        (dict(paper_value=0.5, higher_is_better=False, tolerance=0.1), "not reproduced"),
        (dict(paper_value=0.86, higher_is_better=None, tolerance=0.02), "within tolerance"),
        (dict(paper_value=0.95, higher_is_better=None, tolerance=0.02), "not reproduced"),
        (dict(paper_value=None), "not comparable"),
        (dict(paper_value=0.1, comparable=False), "not comparable"),
        (dict(claim="clusters stay together", claim_holds=True), "holds"),
        (dict(claim="clusters stay together", claim_holds=False), "not shown"),
        (dict(claim="clusters stay together", verdict="contradicted"), "contradicted"),
        (dict(claim="clusters stay together"), "not comparable"),
    ],
)
def test_status(kw, status):
    assert rec(**kw).status == status


def test_round_trip_and_derived_keys_not_trusted(tmp_path):
    records = [
        rec(paper_value=0.85, tolerance=0.02, config={"n": 3}, seeds=[0, 1], note="x|y"),
        rec(claim="holds", claim_holds=True, values=[]),
    ]
    text = records_to_json(records, package="demo", mode="quick")
    payload = json.loads(text)
    assert payload["schema"] == 2 and payload["mode"] == "quick"
    assert payload["records"][0]["status"] == "reproduced"
    payload["records"][0]["status"] = "bogus"
    back = records_from_json(json.dumps(payload))
    assert back[0] == records[0] and back[1] == records[1]
    assert back[0].status == "reproduced"
    (tmp_path / "r.json").write_text(text)
    assert read_results(tmp_path / "r.json") == records


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(values=[]), "at least one"),
        (dict(values=[math.nan]), "NaN"),
        (dict(package=""), "package"),
        (dict(tolerance=-1.0), "tolerance"),
    ],
)
def test_bad_records(kw, match):
    with pytest.raises(ValueError, match=match):
        rec(**kw)


def test_bad_json():
    with pytest.raises(ValueError, match="records"):
        records_from_json("{}")
    with pytest.raises(ValueError, match="schema"):
        records_from_json('{"schema": 99, "records": []}')
    with pytest.raises(ValueError, match="missing"):
        records_from_json('{"schema": 1, "records": [{"package": "x"}]}')


def test_nan_refused_in_json():
    r = rec()
    r.paper_value = math.inf
    with pytest.raises(ValueError):
        records_to_json([r])


def test_table_puts_ours_beside_paper():
    table = results_table(
        [
            rec(paper_value=0.85, paper_note="Table 2", note="a|b"),
            rec(claim="C", claim_holds=False),
        ],
    )
    lines = table.strip().splitlines()
    assert lines[0] == "| Experiment | Metric | Ours | Paper | Status | Note |"
    assert "| exp | acc | 0.85 ± 0.071 | 0.85 (Table 2) | reproduced | a\\|b |" == lines[2]
    assert "(not shown)" in lines[3] and "| not shown |" in lines[3]
    assert len(lines) == 4


def test_format_value():
    assert format_value(None) == "–"
    assert format_value(0.123456) == "0.1235"
    assert format_value(2.0, 0.5) == "2 ± 0.5"


@pytest.mark.parametrize(
    ("a", "b", "kw", "verdict"),
    [
        ([0.81, 0.83, 0.80], [0.78, 0.79, 0.78], {}, "holds"),
        ([0.78, 0.79, 0.78], [0.81, 0.83, 0.80], {}, "contradicted"),
        ([0.78, 0.79, 0.78], [0.81, 0.83, 0.80], {"direction": "less"}, "holds"),
        ([0.80, 0.79, 0.81], [0.79, 0.80, 0.80], {}, "not shown"),
        ([0.9], [0.1], {}, "not shown"),  # one seed never shows anything
        ([0.81, 0.83, 0.80], [0.78, 0.79, 0.78], {"margin": 0.05}, "contradicted"),
    ],
)
def test_claim_test_verdicts(a, b, kw, verdict):
    from papershelf.core.records import claim_test

    assert claim_test(a, b, **kw).verdict == verdict


def test_claim_test_interval_is_student_t():
    from papershelf.core.records import claim_test

    # differences 1, 2, 3: mean 2, se 1/sqrt(3), t_{0.95, 2} = 2.919986 (scipy.stats.t.ppf)
    t = claim_test([1.0, 2.0, 3.0])
    assert t.diff == pytest.approx(2.0) and t.se == pytest.approx(1 / math.sqrt(3))
    assert t.low == pytest.approx(2.0 - 2.9199856 / math.sqrt(3))
    assert t.high == pytest.approx(2.0 + 2.9199856 / math.sqrt(3))
    big = claim_test([float(i % 7) for i in range(200)])
    assert (big.high - big.diff) / big.se == pytest.approx(1.6525467461665633, rel=1e-9)
    for bad in ([1.0, math.nan], []):
        with pytest.raises(ValueError):
            claim_test(bad)
    with pytest.raises(ValueError, match="direction"):
        claim_test([1.0, 2.0], direction="up")


@pytest.mark.parametrize(
    ("confidence", "df", "expected"),  # scipy.stats.t.ppf(confidence, df)
    [
        (0.95, 1, 6.313751514675037),
        (0.8, 2, 1.0606601717798214),
        (0.975, 4, 2.7764451051977934),
        (0.95, 7, 1.8945786050900062),
        (0.99, 30, 2.457261542400591),
    ],
)
def test_t_quantile_matches_scipy(confidence, df, expected):
    from papershelf.core.records import _t_quantile

    assert _t_quantile(confidence, df) == pytest.approx(expected, rel=1e-10)


def test_record_from_claim_test_round_trips():
    from papershelf.core.records import claim_test

    t = claim_test([0.81, 0.83, 0.80], [0.78, 0.79, 0.78])
    r = ResultRecord.from_claim_test(
        t, package="demo", experiment="e", metric="acc gain", claim="A beats B", headline=True
    )
    assert r.status == "holds" and r.headline and r.interval == [t.low, t.high]
    back = records_from_json(records_to_json([r]))[0]
    assert back.status == "holds" and back.interval == r.interval and back.headline
    with pytest.raises(ValueError, match="verdict"):
        rec(claim="c", verdict="maybe")
    with pytest.raises(ValueError, match="interval"):
        rec(claim="c", verdict="holds", interval=[1.0, 0.0])
