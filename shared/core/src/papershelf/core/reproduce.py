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

from papershelf.core.devices import cpu_threads
from papershelf.core.environment import describe_hardware, package_versions
from papershelf.core.io import _umask, atomic_write_text
from papershelf.core.records import ResultRecord, read_results, records_to_json, results_table
from papershelf.core.registry import ReproduceContext, ReproduceError, Reproduction

__all__ = ["RunOutcome", "run_reproduction", "write_summary"]

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


def _package_markdown(
    repro: Reproduction,
    records: Sequence[ResultRecord],
    meta: dict[str, object],
    figures: Sequence[str],
) -> str:
    lines = [
        f"# {repro.name}: {repro.title}",
        "",
        f"{repro.authors}, {repro.venue}. {repro.url}",
        "",
        f"Command: `{meta['command']}` · mode {meta['mode']} · seeds {meta['seeds']} · "
        f"device {meta['device']} · {meta['hardware']} · {meta['runtime_s']:.1f} s",
        "",
        results_table(records).rstrip(),
    ]
    for fig in figures:
        lines += ["", f"![{fig}]({fig})"]
    return "\n".join(lines) + "\n"


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

    The runner writes into a temporary sibling folder; ``results.json`` and
    ``results.md`` are added there and its files replace their namesakes in
    ``out_root / repro.name`` only when everything succeeded (other files a user keeps there
    are left alone). A crash, Ctrl-C or SIGTERM leaves the previous results untouched and no
    temporary folder behind. Folders get the usual permissions (``0777 & ~umask``).

    ``threads`` sets the CPU threads of torch and BLAS for the run and restores them
    afterwards. ``None`` means one thread for the quick profile on the CPU (small models, where
    a second thread on a busy machine is slower, and the runs stay comparable) and no change
    otherwise.
    """
    if threads is None and device == "cpu" and not full:
        threads = 1
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    final = out_root / repro.name
    tmp = Path(tempfile.mkdtemp(prefix=f".{repro.name}.", suffix=".tmp", dir=out_root))
    tmp.chmod(0o777 & ~_umask())
    ctx = ReproduceContext(
        out_dir=tmp,
        full=full,
        seeds=tuple(seeds),
        device=device,
        show_progress=show_progress,
        threads=threads,
    )
    start = time.perf_counter()
    try:
        with cpu_threads(threads):
            records = list(repro.load_runner()(ctx))
        if not records:
            raise RuntimeError(f"reproduction {repro.name!r} returned no result records")
        for r in records:
            if not isinstance(r, ResultRecord):
                raise TypeError(
                    f"reproduction {repro.name!r} returned {type(r).__name__}, not ResultRecord"
                )
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
        figures = sorted(p.name for p in tmp.iterdir() if p.suffix.lower() in {".png", ".svg"})
        meta["figures"] = figures
        atomic_write_text(tmp / "results.json", records_to_json(records, **meta))
        atomic_write_text(tmp / "results.md", _package_markdown(repro, records, meta, figures))
        _swap_into_place(tmp, final)
        return RunOutcome(repro.name, True, runtime, records, out_dir=final)
    except BaseException as exc:
        runtime = time.perf_counter() - start
        shutil.rmtree(tmp, ignore_errors=True)
        if not isinstance(exc, Exception):  # Ctrl-C, SIGTERM (SystemExit), ...
            raise
        log.debug("reproduction %s failed", repro.name, exc_info=True)
        if isinstance(exc, ReproduceError):
            err = str(exc)
        else:
            err = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return RunOutcome(
            repro.name, False, runtime, error=err, out_dir=final if final.exists() else None
        )


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Move every file of ``tmp`` over its namesake in ``final``; leave other files alone."""
    if not final.exists():
        tmp.rename(final)
        return
    for src in sorted(tmp.rglob("*")):
        dest = final / src.relative_to(tmp)
        if src.is_dir():
            dest.mkdir(exist_ok=True)
        else:
            os.replace(src, dest)
    shutil.rmtree(tmp, ignore_errors=True)


def write_summary(out_root: str | Path) -> tuple[Path, str]:
    """Combine every ``out_root/*/results.json`` into ``out_root/results.md``; return path and table."""
    out_root = Path(out_root)
    records: list[ResultRecord] = []
    for path in sorted(out_root.glob("*/results.json")):
        try:
            records.extend(read_results(path))
        except (ValueError, OSError) as exc:
            log.warning("skipping unreadable %s: %s", path, exc)
    if records:
        table = results_table(records, include_package=True, include_runtime=True)
    else:
        table = "No results yet.\n"
    text = "# papershelf: results beside the papers\n\n" + table
    return atomic_write_text(out_root / "results.md", text), table
