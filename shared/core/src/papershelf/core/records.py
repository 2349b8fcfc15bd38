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
from typing import Any, Literal, NamedTuple, get_args

# fmt: off
__all__ = [
    "SCHEMA_VERSION", "STATUSES", "VERDICTS", "ClaimTest", "ResultRecord", "Status", "Verdict",
    "claim_test", "format_value", "read_results", "records_from_json", "records_to_json",
    "results_table",
]
# fmt: on

SCHEMA_VERSION = 2
_READABLE_SCHEMAS = (1, 2)


Verdict = Literal["holds", "not shown", "contradicted"]
VERDICTS: tuple[Verdict, ...] = ("holds", "not shown", "contradicted")


def _t_within(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with an integer ``df`` (the closed-form series)."""
    theta = math.atan(t / math.sqrt(df))
    c2, term, total = math.cos(theta) ** 2, 1.0, 1.0
    for k in range(1 + df % 2, df - 1, 2):
        term *= c2 * k / (k + 1)
        total += term
    if df % 2 == 0:
        return math.sin(theta) * total
    tail = math.sin(theta) * math.cos(theta) * total if df > 1 else 0.0
    return 2 / math.pi * (theta + tail)


def _t_quantile(confidence: float, df: int) -> float:
    """The one-sided ``confidence`` quantile of Student's t with ``df`` (bisection, exact)."""
    target, lo, hi = 2 * confidence - 1, 0.0, 1.0
    while _t_within(hi, df) < target:
        lo, hi = hi, 2 * hi
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_within(mid, df) < target else (lo, mid)
    return (lo + hi) / 2


class ClaimTest(NamedTuple):
    """A claimed direction of a paired difference over seeds, tested (see :func:`claim_test`).

    ``diff`` and ``se`` are the mean per-seed difference and its standard error (``inf`` for one
    seed), ``n`` the number of seeds, ``[low, high]`` the two-sided ``2 * confidence - 1``
    Student-t interval (one side of it is the test's one-sided bound). ``verdict`` is "holds"
    when the interval lies beyond ``margin`` in the claimed ``direction`` ("greater" or "less"),
    "contradicted" when it lies beyond it the other way, else "not shown".
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
        Difference, standard error, interval, verdict (one seed: infinite, "not shown").

    Examples
    --------
    >>> claim_test([0.81, 0.83, 0.80], [0.78, 0.79, 0.78]).verdict
    'holds'
    """
    from papershelf.core.validation import check_choice, check_real  # numpy: not at import

    check_choice("direction", direction, ("greater", "less"))
    check_real("confidence", confidence, low=0.5, high=1, inclusive=(True, False))
    check_real("margin", margin)
    if b is not None and len(a) != len(b):
        raise ValueError(f"a and b must have one value per seed each, got {len(a)} and {len(b)}")
    pairs = zip(a, [0.0] * len(a) if b is None else b, strict=True)
    diffs = [float(x) - float(y) for x, y in pairs]
    if not diffs:
        raise ValueError("a must hold at least one value per seed")
    if not all(math.isfinite(d) for d in diffs):
        raise ValueError("a and b must be finite (a seed gave NaN or inf)")
    n = len(diffs)
    diff = statistics.fmean(diffs)
    if n == 1:
        se, low, high = math.inf, -math.inf, math.inf
    else:
        se = statistics.stdev(diffs) / math.sqrt(n)
        half = _t_quantile(confidence, n - 1) * se
        low, high = diff - half, diff + half
    beyond, against = (low > margin, high < margin)[:: 1 if direction == "greater" else -1]
    verdict: Verdict = "holds" if beyond else "contradicted" if against else "not shown"
    return ClaimTest(diff, se, n, low, high, confidence, margin, direction, verdict)


Status = Literal["reproduced", "within tolerance", "not reproduced", "not comparable"]
STATUSES: tuple[Status | Verdict, ...] = (*get_args(Status), *VERDICTS)


@dataclass
class ResultRecord:
    """One measured quantity of a reproduction, set beside the paper's value.

    Parameters
    ----------
    package, experiment, metric : str
        Short package name (``"tmd"``), what was run (``"MUTAG 10-fold SVM"``) and what was
        measured (``"accuracy (%)"``).
    values : sequence of float
        One value per seed; the record reports their mean and standard deviation.
    paper_value : float, optional
        The paper's number for the same quantity, when there is one.
    higher_is_better : bool, optional
        Direction of the comparison; ``None``: two-sided (only the distance matters).
    tolerance : float, optional
        Absolute distance from the paper's value that still counts as "within tolerance".
    claim : str, optional
        A qualitative claim (e.g. "InfoOT keeps clusters together"); its status is its verdict.
    verdict : {"holds", "not shown", "contradicted"}, optional
        Normally from :func:`claim_test` over seeds (:meth:`from_claim_test`); a deterministic
        check that fails sets "contradicted". The older ``claim_holds`` (``True`` -> "holds",
        ``False`` -> "not shown") is used when ``verdict`` is ``None``.
    interval : [float, float], optional
        ``[low, high]`` of the claim's :class:`ClaimTest`.
    headline : bool
        This record is its package's headline (exactly one per package).
    comparable : bool
        ``False`` when our setting differs from the paper's (another data set, smaller scale):
        reported, never called reproduced.
    paper_note, note : str
        How to read the paper's number (table, setting); what a reader needs to read ours.
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
        raw: Any = self.values
        vals = [float(v) for v in ([raw] if isinstance(raw, int | float) else raw)]
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
        if self.verdict is not None and self.verdict not in VERDICTS:
            raise ValueError(
                f"ResultRecord.verdict must be one of {VERDICTS}, got {self.verdict!r}"
            )
        if self.verdict is not None and self.claim is None:
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
        """A claim row from a :class:`ClaimTest` (``values`` defaults to ``[test.diff]``)."""
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
        if (diff >= 0) if self.higher_is_better else (diff <= 0):
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
        if missing := {"package", "experiment", "metric"} - set(data):
            raise ValueError(f"result record is missing keys: {sorted(missing)}")
        known = {f.name for f in fields(cls)}
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
    return f"{value:.{digits}g}" + (f" ± {std:.2g}" if std else "")


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def results_table(records: Sequence[ResultRecord]) -> str:
    """Render records as a markdown table, ours beside the paper's.

    Qualitative claims show the claim in the paper column and whether it held in ours.
    """
    lines = ["| Experiment | Metric | Ours | Paper | Status | Note |", "|" + "---|" * 6]
    for r in records:
        ours = format_value(r.mean, r.std)
        paper = format_value(r.paper_value)
        if r.claim is not None:
            verdict = r.status if r.status in VERDICTS else "–"
            ours = f"{ours} ({verdict})" if r.values else verdict
            if r.interval is not None:
                ours += f" [{format_value(r.interval[0])}, {format_value(r.interval[1])}]"
            paper = r.claim
        paper += f" ({r.paper_note})" if r.paper_note else ""
        row = [r.experiment, r.metric, ours, paper, r.status, r.note]
        lines.append("| " + " | ".join(_escape(str(c)) for c in row) + " |")
    return "\n".join(lines) + "\n"
