"""Running reproductions: a fresh temporary folder per package, moved into place only on success."""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from papershelf.core.io import _umask, atomic_write_text
from papershelf.core.records import (
    VERDICTS,
    ResultRecord,
    format_value,
    read_results,
    records_to_json,
    results_table,
)
from papershelf.core.registry import ReproduceContext, ReproduceError, Reproduction
from papershelf.core.runtime import cpu_threads, describe_hardware, package_versions

__all__ = ["RunOutcome", "package_summary", "run_reproduction", "shelf_table", "write_summary"]

log = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    """What happened when one package's reproduction ran."""

    name: str
    ok: bool
    runtime_s: float
    records: list[ResultRecord] = field(default_factory=list)
    error: str = ""
    out_dir: Path | None = None


def _package_markdown(repro: Reproduction, records: Sequence[ResultRecord], meta: dict) -> str:
    run = (
        f"Command: `{meta['command']}` · mode {meta['mode']} · seeds {meta['seeds']} · "
        f"device {meta['device']} · {meta['hardware']} · {meta['runtime_s']:.1f} s"
    )
    head = [f"# {repro.name}: {repro.title}", f"{repro.authors}, {repro.venue}. {repro.url}", run]
    figures = [f"![{fig}]({fig})" for fig in meta["figures"]]
    return "\n\n".join([*head, results_table(records).rstrip(), *figures]) + "\n"


def run_reproduction(
    repro: Reproduction,
    out_root: str | Path,
    *,
    full: bool = False,
    seeds: Sequence[int] = (0,),
    device: str = "cpu",
    show_progress: bool | None = None,
    command: str | None = None,
    threads: int | None = None,
) -> RunOutcome:
    """Run one reproduction into ``out_root / repro.name``.

    The runner writes into a temporary sibling folder, which gets ``results.json`` and
    ``results.md``; its files replace their namesakes in ``out_root / repro.name`` only when
    everything succeeded (a user's other files there stay). A crash, Ctrl-C or SIGTERM leaves
    the previous results and no temporary folder. ``threads`` (torch and BLAS, restored after)
    defaults to 1 for a quick run on the CPU (small models; comparable runs) and no change
    otherwise.
    """
    if threads is None and device == "cpu" and not full:
        threads = 1
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    final = out_root / repro.name
    tmp = Path(tempfile.mkdtemp(prefix=f".{repro.name}.", suffix=".tmp", dir=out_root))
    tmp.chmod(0o777 & ~_umask())
    ctx = ReproduceContext(tmp, full, tuple(seeds), device, show_progress, threads)
    start = time.perf_counter()
    try:
        with cpu_threads(threads):
            records = list(repro.load_runner()(ctx))
        if not records:
            raise RuntimeError(f"reproduction {repro.name!r} returned no result records")
        wrong = [type(r).__name__ for r in records if not isinstance(r, ResultRecord)]
        if wrong:
            raise TypeError(f"reproduction {repro.name!r} returned {wrong[0]}, not ResultRecord")
        runtime = time.perf_counter() - start
        hardware = describe_hardware()
        versions = package_versions([repro.distribution])
        for r in records:
            r.runtime_s = runtime if r.runtime_s is None else r.runtime_s
            r.hardware = r.hardware or hardware
            r.versions = r.versions or versions
            r.seeds = r.seeds or list(ctx.seeds)
        meta: dict[str, object] = {
            "package": repro.name,
            "distribution": repro.distribution,
            "version": repro.version,
            "mode": ctx.mode,
            "seeds": list(ctx.seeds),
            "device": device,
            "threads": threads,
            "hardware": hardware,
            "runtime_s": round(runtime, 3),
            "command": command or f"papershelf reproduce {repro.name}",
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        meta["figures"] = sorted(p.name for p in tmp.iterdir() if p.suffix in {".png", ".svg"})
        atomic_write_text(tmp / "results.json", records_to_json(records, **meta))
        atomic_write_text(tmp / "results.md", _package_markdown(repro, records, meta))
        _swap_into_place(tmp, final)
        return RunOutcome(repro.name, True, runtime, records, out_dir=final)
    except BaseException as exc:
        runtime = time.perf_counter() - start
        shutil.rmtree(tmp, ignore_errors=True)
        if not isinstance(exc, Exception):  # Ctrl-C, SIGTERM (SystemExit), ...
            raise
        log.debug("reproduction %s failed", repro.name, exc_info=True)
        err = "".join(traceback.format_exception_only(exc)).strip()
        err = str(exc) if isinstance(exc, ReproduceError) else err
        kept = final if final.exists() else None
        return RunOutcome(repro.name, False, runtime, error=err, out_dir=kept)


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Move every file of ``tmp`` over its namesake in ``final``; leave other files alone."""
    if not final.exists():
        tmp.rename(final)
        return
    for src in sorted(tmp.rglob("*")):
        dest = final / src.relative_to(tmp)
        dest.mkdir(exist_ok=True) if src.is_dir() else os.replace(src, dest)
    shutil.rmtree(tmp, ignore_errors=True)


def package_summary(records: Sequence[ResultRecord]) -> dict[str, str]:
    """One package's line on the shelf: ``claims``, ``measured``, ``headline``, ``runtime``.

    Claims are counted by verdict; numbers with a paper value by status (and those without one
    at this scale); the headline is the record marked ``headline=True`` (else the first claim).
    """
    claims = [r for r in records if r.claim is not None]
    counted = zip(("hold", "not shown", "contradicted"), VERDICTS, strict=True)
    claim_text = " / ".join(f"{sum(r.status == v for r in claims)} {w}" for w, v in counted)
    numbers = [r for r in records if r.claim is None]
    compared = [r for r in numbers if r.status != "not comparable"]
    counts = [f"{sum(r.status == s for r in compared)} {s}" for s in STATUS_ORDER]
    measured = ", ".join(c for c in counts if not c.startswith("0 "))
    measured = f"vs paper: {measured}; " if compared else ""
    measured += f"{len(numbers) - len(compared)} without a paper number at this scale"
    top = next((r for r in records if r.headline), (claims or list(records))[0])
    ours = format_value(top.mean, None if top.claim is not None else top.std)
    if top.claim is not None:
        ours = f"{ours}, {top.status}" if top.values else str(top.status)
        if top.interval is not None:
            ours += f" [{format_value(top.interval[0])}, {format_value(top.interval[1])}]"
        headline = f"{top.experiment}: {top.claim} — ours {ours}"
    else:
        headline = f"{top.experiment}, {top.metric}: ours {ours}"
    if top.paper_value is not None:
        headline += f" vs paper {format_value(top.paper_value)}"
    headline += f" ({top.paper_note})" if top.paper_note else ""
    n_seeds = len(top.seeds or top.values)
    headline += f"; {n_seeds} seed{'s' if n_seeds != 1 else ''}"
    runtimes = [r.runtime_s for r in records if r.runtime_s is not None]
    return {
        "claims": claim_text if claims else "no claims",
        "measured": measured,
        "headline": headline,
        "runtime": f"{max(runtimes):.0f} s" if runtimes else "–",
    }


STATUS_ORDER = ("reproduced", "within tolerance", "not reproduced")


def shelf_table(rows: Sequence[tuple[str, Sequence[ResultRecord]]]) -> str:
    """A markdown table with one line per package (see :func:`package_summary`)."""
    lines = [
        "| Package | Claims | Numbers | Headline (ours vs paper) | Runtime |",
        "|" + "---|" * 5,
    ]
    for name, records in rows:
        cells = [name, *package_summary(records).values()]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(out_root: str | Path) -> tuple[Path, str]:
    """Combine every ``out_root/*/results.json`` into ``out_root/results.md``: one line per
    package (:func:`shelf_table`), then each package's table. Returns the path and the lines."""
    out_root = Path(out_root)
    rows: list[tuple[str, list[ResultRecord]]] = []
    for path in sorted(out_root.glob("*/results.json")):
        try:
            rows.append((path.parent.name, read_results(path)))
        except (ValueError, OSError) as exc:
            log.warning("skipping unreadable %s: %s", path, exc)
    table = shelf_table(rows) if rows else "No results yet.\n"
    text = "# papershelf: results beside the papers\n\n" + table
    for name, records in rows:
        text += f"\n## {name}\n\n" + results_table(records)
    return atomic_write_text(out_root / "results.md", text), table
