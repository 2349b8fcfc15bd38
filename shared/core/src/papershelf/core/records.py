"""Result records: one number of ours beside the paper's, with how they compare.

A :class:`ResultRecord` is the unit every reproduction returns. It knows its own
status (reproduced, within tolerance, not reproduced, not comparable), round-trips
through JSON, and renders into the markdown table that READMEs and the command show.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, NamedTuple

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "VERDICTS",
    "ClaimTest",
    "ResultRecord",
    "Status",
    "Verdict",
    "claim_test",
    "format_value",
    "read_results",
    "records_from_json",
    "records_to_json",
    "results_table",
]

SCHEMA_VERSION = 2
_READABLE_SCHEMAS = (1, 2)


Verdict = Literal["holds", "not shown", "contradicted"]
VERDICTS: tuple[Verdict, ...] = ("holds", "not shown", "contradicted")

# One-sided Student-t quantiles t_{0.95, df} and t_{0.975, df}, df = 1..30 (beyond: normal).
_T95 = (
    6.314,
    2.920,
    2.353,
    2.132,
    2.015,
    1.943,
    1.895,
    1.860,
    1.833,
    1.812,
    1.796,
    1.782,
    1.771,
    1.761,
    1.753,
    1.746,
    1.740,
    1.734,
    1.729,
    1.725,
    1.721,
    1.717,
    1.714,
    1.711,
    1.708,
    1.706,
    1.703,
    1.701,
    1.699,
    1.697,
)
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def _t_quantile(confidence: float, df: int) -> float:
    if df <= 30 and confidence in (0.95, 0.975):
        return (_T95 if confidence == 0.95 else _T975)[df - 1]
    z = statistics.NormalDist().inv_cdf(confidence)
    # Cornish-Fisher expansion of Student's t in 1/df (exact to ~1e-3 for df >= 3)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


class ClaimTest(NamedTuple):
    """A claimed direction of a paired difference over seeds, tested.

    Attributes
    ----------
    diff, se : float
        Mean of the per-seed differences and its standard error (``inf`` for one seed).
    n : int
        Number of seeds.
    low, high : float
        The two-sided ``2 * confidence - 1`` interval of the mean difference (Student t), whose
        one side is the one-sided ``confidence`` bound of the test.
    confidence : float
        One-sided confidence level.
    margin : float
        The value the difference is compared with (0: "better at all").
    direction : str
        ``"greater"`` (claim: difference > margin) or ``"less"``.
    verdict : str
        ``"holds"`` when the interval lies beyond ``margin`` in the claimed direction,
        ``"contradicted"`` when it lies beyond it the other way, else ``"not shown"``.
    """

    diff: float
    se: float
    n: int
    low: float
    high: float
    confidence: float
    margin: float
    direction: str
    verdict: Verdict


def claim_test(
    a: Sequence[float],
    b: Sequence[float] | None = None,
    *,
    direction: str = "greater",
    margin: float = 0.0,
    confidence: float = 0.95,
) -> ClaimTest:
    """The shelf's one verdict rule: a paired difference over seeds, one-sided t test.

    Parameters
    ----------
    a, b : sequence of float, shape (n_seeds,)
        Per-seed results of two methods on matched seeds (the same seed gives both the same
        data, initialisation and evaluation draws). With ``b=None``, ``a`` holds the per-seed
        differences (or values) themselves.
    direction : {"greater", "less"}
        The claim: ``mean(a - b) > margin`` or ``< margin``.
    margin : float
        What the difference must clear (default 0).
    confidence : float
        One-sided confidence in ``[0.5, 1)`` (default 0.95: the claim holds when the one-sided
        95% bound clears ``margin``; the reported interval is the two-sided 90% one).

    Returns
    -------
    ClaimTest
        The difference, its standard error, the interval and the verdict. One seed gives an
        infinite interval and always "not shown".

    Examples
    --------
    >>> claim_test([0.81, 0.83, 0.80], [0.78, 0.79, 0.78]).verdict
    'holds'
    """
    if direction not in ("greater", "less"):
        raise ValueError(f"direction must be 'greater' or 'less', got {direction!r}")
    if not 0.5 <= confidence < 1:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence}")
    if not math.isfinite(margin):
        raise ValueError(f"margin must be finite, got {margin}")
    if b is None:
        diffs = [float(x) for x in a]
    else:
        if len(a) != len(b):
            raise ValueError(
                f"a and b must have one value per seed each, got {len(a)} and {len(b)}"
            )
        diffs = [float(x) - float(y) for x, y in zip(a, b, strict=True)]
    if not diffs:
        raise ValueError("a must hold at least one value per seed")
    if not all(math.isfinite(d) for d in diffs):
        raise ValueError("a and b must be finite (a seed gave NaN or inf)")
    n = len(diffs)
    diff = statistics.fmean(diffs)
    if n == 1:
        se = low = high = math.inf
        low = -math.inf
    else:
        se = statistics.stdev(diffs) / math.sqrt(n)
        half = _t_quantile(confidence, n - 1) * se
        low, high = diff - half, diff + half
    verdict: Verdict = "not shown"
    if direction == "greater":
        if low > margin:
            verdict = "holds"
        elif high < margin:
            verdict = "contradicted"
    else:
        if high < margin:
            verdict = "holds"
        elif low > margin:
            verdict = "contradicted"
    return ClaimTest(diff, se, n, low, high, confidence, margin, direction, verdict)


Status = Literal["reproduced", "within tolerance", "not reproduced", "not comparable"]
STATUSES: tuple[Status | Verdict, ...] = (
    "reproduced",
    "within tolerance",
    "not reproduced",
    "not comparable",
    *VERDICTS,
)


@dataclass
class ResultRecord:
    """One measured quantity of a reproduction, set beside the paper's value.

    Parameters
    ----------
    package : str
        Short package name, e.g. ``"tmd"``.
    experiment : str
        What was run, e.g. ``"MUTAG 10-fold SVM"``.
    metric : str
        What was measured, e.g. ``"accuracy (%)"``.
    values : sequence of float
        One value per seed; the record reports their mean and standard deviation.
    paper_value : float, optional
        The paper's number for the same quantity, when there is one.
    higher_is_better : bool, optional
        Direction of the comparison. ``None`` means two-sided: only the distance
        to the paper's value matters.
    tolerance : float, optional
        Absolute distance from the paper's value that still counts as
        "within tolerance".
    claim : str, optional
        A qualitative claim (e.g. "InfoOT keeps clusters together"). When given,
        the status is decided by ``claim_holds`` alone.
    claim_holds : bool, optional
        Whether the qualitative claim held in our run (``True`` -> "holds", ``False`` ->
        "not shown"); superseded by ``verdict``.
    verdict : {"holds", "not shown", "contradicted"}, optional
        The claim's verdict, normally from :func:`claim_test` over seeds (see
        :meth:`from_claim_test`); a deterministic check that fails sets "contradicted".
    interval : [float, float], optional
        The interval of the claim's tested quantity (``[low, high]`` of :class:`ClaimTest`).
    headline : bool
        This record is its package's headline (exactly one per package).
    comparable : bool
        ``False`` when our setting differs from the paper's (another data set,
        smaller scale): the record is reported but never called reproduced.
    paper_note : str
        How to read the paper's number (table, setting), shown beside it.
    note : str
        Anything a reader needs to interpret our number.
    config, seeds, runtime_s, hardware, versions
        Provenance, filled by the reproduction and the core.
    """

    package: str
    experiment: str
    metric: str
    values: list[float]
    paper_value: float | None = None
    higher_is_better: bool | None = True
    tolerance: float | None = None
    claim: str | None = None
    claim_holds: bool | None = None
    verdict: Verdict | None = None
    interval: list[float] | None = None
    headline: bool = False
    comparable: bool = True
    paper_note: str = ""
    note: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    runtime_s: float | None = None
    hardware: str = ""
    versions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("package", "experiment", "metric"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"ResultRecord.{name} must be a non-empty string")
        if isinstance(self.values, (int, float)):
            self.values = [float(self.values)]
        vals = [float(v) for v in self.values]
        if not vals and self.claim is None:
            raise ValueError("ResultRecord.values must hold at least one value")
        if any(math.isnan(v) for v in vals):
            raise ValueError(f"ResultRecord.values contains NaN for {self.experiment!r}")
        self.values = vals
        if self.paper_value is not None:
            self.paper_value = float(self.paper_value)
        if self.tolerance is not None and self.tolerance < 0:
            raise ValueError("ResultRecord.tolerance must be >= 0")
        self.seeds = [int(s) for s in self.seeds]
        if self.verdict is not None:
            if self.verdict not in VERDICTS:
                raise ValueError(
                    f"ResultRecord.verdict must be one of {VERDICTS}, got {self.verdict!r}"
                )
            if self.claim is None:
                raise ValueError("ResultRecord.verdict needs a claim")
        if self.interval is not None:
            lo, hi = (float(v) for v in self.interval)
            if not lo <= hi:
                raise ValueError(f"ResultRecord.interval must be [low, high], got {self.interval}")
            self.interval = [lo, hi]

    @classmethod
    def from_claim_test(
        cls,
        test: ClaimTest,
        *,
        package: str,
        experiment: str,
        metric: str,
        claim: str,
        values: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> ResultRecord:
        """A claim row from a :class:`ClaimTest`: its verdict, interval and seeds.

        ``values`` defaults to ``[test.diff]`` (one number: the mean difference); pass the
        per-seed differences to keep them. The note gets ``diff ± se, n seeds``.
        """
        note = kwargs.pop("note", "")
        seeds_note = (
            f"paired diff {test.diff:.4g} ± {test.se:.2g} (se), "
            f"{round(200 * test.confidence - 100)}% interval "
            f"[{test.low:.4g}, {test.high:.4g}], {test.n} seeds"
        )
        kwargs.setdefault("claim_holds", test.verdict == "holds")
        return cls(
            package=package,
            experiment=experiment,
            metric=metric,
            values=list(values) if values is not None else [test.diff],
            claim=claim,
            verdict=test.verdict,
            interval=None if test.n < 2 else [test.low, test.high],
            note=f"{note}; {seeds_note}" if note else seeds_note,
            **kwargs,
        )

    @property
    def mean(self) -> float:
        """Mean over seeds (NaN when the record holds no value)."""
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation over seeds (0 for a single seed)."""
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    @property
    def status(self) -> Status | Verdict:
        """How our value compares with the paper's; for a claim, its verdict."""
        if self.claim is not None:
            if self.verdict is not None:
                return self.verdict
            if self.claim_holds is None:
                return "not comparable"
            return "holds" if self.claim_holds else "not shown"
        if self.paper_value is None or not self.comparable:
            return "not comparable"
        diff = self.mean - self.paper_value
        tol = self.tolerance if self.tolerance is not None else 0.0
        if self.higher_is_better is None:
            return "within tolerance" if abs(diff) <= tol else "not reproduced"
        better = diff >= 0 if self.higher_is_better else diff <= 0
        if better:
            return "reproduced"
        return "within tolerance" if abs(diff) <= tol else "not reproduced"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with the derived mean, std and status added."""
        d = asdict(self)
        d["mean"] = self.mean if self.values else None
        d["std"] = self.std if self.values else None
        d["status"] = self.status
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResultRecord:
        """Inverse of :meth:`to_dict`; derived keys are recomputed, not trusted."""
        known = {f.name for f in fields(cls)}
        missing = {"package", "experiment", "metric"} - set(data)
        if missing:
            raise ValueError(f"result record is missing keys: {sorted(missing)}")
        return cls(**{k: v for k, v in data.items() if k in known})


def records_to_json(records: Iterable[ResultRecord], **meta: Any) -> str:
    """Serialise records (and free-form metadata) into the ``results.json`` format."""
    payload = {"schema": SCHEMA_VERSION, **meta, "records": [r.to_dict() for r in records]}
    return json.dumps(payload, indent=2, sort_keys=False, allow_nan=False) + "\n"


def records_from_json(text: str) -> list[ResultRecord]:
    """Parse the ``results.json`` format back into records."""
    payload = json.loads(text)
    if not isinstance(payload, dict) or "records" not in payload:
        raise ValueError("not a papershelf results file: no 'records' key")
    schema = payload.get("schema")
    if schema not in _READABLE_SCHEMAS:
        raise ValueError(f"unsupported results schema {schema!r} (expected {SCHEMA_VERSION})")
    return [ResultRecord.from_dict(r) for r in payload["records"]]


def read_results(path: str | Path) -> list[ResultRecord]:
    """Read the records of a ``results.json`` file."""
    return records_from_json(Path(path).read_text(encoding="utf-8"))


def format_value(value: float | None, std: float | None = None, digits: int = 4) -> str:
    """Format ``value ± std`` with ``digits`` significant digits ("–" for ``None``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = f"{value:.{digits}g}"
    if std:
        text += f" ± {std:.2g}"
    return text


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def results_table(
    records: Sequence[ResultRecord],
    *,
    include_package: bool = False,
    include_runtime: bool = False,
) -> str:
    """Render records as a markdown table, ours beside the paper's.

    Qualitative claims show the claim in the paper column and whether it held in ours.
    """
    head = ["Experiment", "Metric", "Ours", "Paper", "Status"]
    if include_package:
        head.insert(0, "Package")
    if include_runtime:
        head.append("Runtime (s)")
    head.append("Note")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        if r.claim is not None:
            ours: str = r.status if r.status in VERDICTS else "–"
            if r.values:
                ours = f"{format_value(r.mean, r.std)} ({ours})"
            if r.interval is not None:
                ours += f" [{format_value(r.interval[0])}, {format_value(r.interval[1])}]"
            paper = r.claim
        else:
            ours = format_value(r.mean, r.std)
            paper = format_value(r.paper_value)
        if r.paper_note:
            paper = f"{paper} ({r.paper_note})"
        row = [r.experiment, r.metric, ours, paper, r.status]
        if include_package:
            row.insert(0, r.package)
        if include_runtime:
            row.append("–" if r.runtime_s is None else f"{r.runtime_s:.1f}")
        row.append(r.note)
        lines.append("| " + " | ".join(_escape(str(c)) for c in row) + " |")
    return "\n".join(lines) + "\n"
