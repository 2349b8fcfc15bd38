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
    "PairedDifference",
    "ResultRecord",
    "Status",
    "format_value",
    "paired_difference",
    "read_results",
    "records_from_json",
    "records_to_json",
    "results_table",
]

SCHEMA_VERSION = 1


class PairedDifference(NamedTuple):
    """Mean of a paired difference, its standard error, and whether it clears ``z`` of them."""

    diff: float
    se: float
    holds: bool


def paired_difference(
    a: Sequence[float], b: Sequence[float], *, z: float = 2.0
) -> PairedDifference:
    """Compare two methods run on matched seeds.

    Seeds are matched when the same seed gives both runs the same initialisation, batches and
    evaluation draws, so the per-seed differences ``a[i] - b[i]`` cancel the shared noise.

    Parameters
    ----------
    a, b : sequence of float, shape (n_seeds,)
        Per-seed results of the two methods, in the same seed order.
    z : float
        How many paired standard errors the mean difference must exceed (default 2).

    Returns
    -------
    PairedDifference
        ``(diff, se, holds)``: the mean of ``a - b``, its paired standard error (``inf`` for one
        seed, where it cannot be estimated) and ``diff > 0 and diff > z * se``.
    """
    if len(a) != len(b):
        raise ValueError(f"a and b must have one value per seed each, got {len(a)} and {len(b)}")
    if not a:
        raise ValueError("a and b must not be empty")
    if z < 0:
        raise ValueError(f"z must be non-negative, got {z}")
    diffs = [float(x) - float(y) for x, y in zip(a, b, strict=True)]
    diff = statistics.fmean(diffs)
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else math.inf
    return PairedDifference(diff, se, bool(diff > 0 and diff > z * se))


Status = Literal["reproduced", "within tolerance", "not reproduced", "not comparable"]
STATUSES: tuple[Status, ...] = (
    "reproduced",
    "within tolerance",
    "not reproduced",
    "not comparable",
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
        Whether the qualitative claim held in our run.
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

    @property
    def mean(self) -> float:
        """Mean over seeds (NaN when the record holds no value)."""
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation over seeds (0 for a single seed)."""
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    @property
    def status(self) -> Status:
        """How our value compares with the paper's."""
        if self.claim is not None:
            if self.claim_holds is None:
                return "not comparable"
            return "reproduced" if self.claim_holds else "not reproduced"
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
    if schema != SCHEMA_VERSION:
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
            ours = (
                ("holds" if r.claim_holds else "does not hold")
                if r.claim_holds is not None
                else "–"
            )
            if r.values:
                ours = f"{format_value(r.mean, r.std)} ({ours})"
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
