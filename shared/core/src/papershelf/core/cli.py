"""The ``papershelf`` command: list the shelf, reproduce papers, cite them.

``papershelf --help`` and ``papershelf list`` import neither torch nor any paper's code.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]

DEFAULT_OUT = "papershelf-results"
_EMPTY = "No paper packages installed: nothing to list or reproduce (pip install papershelf-tmd)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``papershelf`` command."""
    parser = argparse.ArgumentParser(
        prog="papershelf",
        description="Ten machine-learning papers as pip-installable packages: list, reproduce, cite.",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_list = sub.add_parser("list", help="installed paper packages and whether results exist")
    p_list.add_argument(
        "--out", default=DEFAULT_OUT, help=f"results folder (default {DEFAULT_OUT})"
    )

    p_rep = sub.add_parser("reproduce", help="run the papers' headline experiments")
    p_rep.add_argument("names", nargs="*", metavar="NAME", help="packages to run (default: all)")
    p_rep.add_argument("--full", action="store_true", help="paper-scale setting (GPU advised)")
    seeds = "number of seeds, 0..N-1 (default: each package's own, at least 3 with --full)"
    p_rep.add_argument("--seeds", type=int, help=seeds)
    p_rep.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p_rep.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    threads = "CPU threads for torch and BLAS (default: 1 for a quick run on CPU, else unchanged)"
    p_rep.add_argument("--threads", type=int, help=threads)
    jobs = "packages run at once, in processes (default: 2 for quick runs on CPU, else 1)"
    p_rep.add_argument("--jobs", type=int, help=jobs)
    bars = "progress bars always / never (default: on a terminal, one package at a time)"
    p_rep.add_argument("--progress", action=argparse.BooleanOptionalAction, help=bars)

    p_cite = sub.add_parser("cite", help="print a paper's BibTeX")
    p_cite.add_argument("name", metavar="NAME")
    return parser


class _UsageError(Exception):
    """A bad command line: ``main`` prints ``papershelf: error: <message>`` and returns 2."""


def _cmd_list(args: argparse.Namespace) -> int:
    from papershelf.core.registry import discover

    rows = [("name", "version", "results", "paper")]
    for rep in discover().values():
        has = (Path(args.out) / rep.name / "results.json").is_file()
        where = str(Path(args.out) / rep.name) if has else "none yet"
        rows.append((rep.name, rep.version, where, f"{rep.title} ({rep.venue})"))
    if len(rows) == 1:
        print(_EMPTY)
        return 0
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3])
    return 0


def _get(name: str) -> Any:
    from papershelf.core.registry import UnknownReproductionError, get_reproduction

    try:
        return get_reproduction(name)
    except UnknownReproductionError as exc:
        raise _UsageError(str(exc)) from None


def _cmd_cite(args: argparse.Namespace) -> int:
    print(_get(args.name).bibtex.strip())
    return 0


def _last_runtime(folder: Path) -> float:
    """The runtime a package's previous results in ``folder`` record (0 when there are none)."""
    try:
        return float(json.loads((folder / "results.json").read_text())["runtime_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from papershelf.core.registry import discover
    from papershelf.core.reproduce import run_reproduction, write_summary
    from papershelf.core.runtime import resolve_device

    chosen = [_get(n) for n in args.names] or list(discover().values())
    if not chosen:
        print(_EMPTY)
        return 0
    for flag in ("seeds", "threads", "jobs"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise _UsageError(f"--{flag} must be at least 1")
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".papershelf-write-check-{time.time_ns()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _UsageError(f"cannot write results to --out {out}: {reason}") from None
    # the command that reproduces a package's numbers (output folder and device aside)
    options = (" --full" if args.full else "") + (f" --seeds {args.seeds}" if args.seeds else "")
    failures = []
    start = time.perf_counter()
    jobs = args.jobs
    if jobs is None:  # quick CPU runs use one thread each: fill the cores with packages
        jobs = 1 if (args.full or device != "cpu") else min(2, os.cpu_count() or 1)
    jobs = max(1, min(jobs, len(chosen)))
    if jobs > 1:  # longest first (by the last run's time), so that no long run starts last
        chosen.sort(key=lambda rep: -_last_runtime(out / rep.name))
    show_progress = args.progress if (jobs == 1 or args.progress is not None) else False
    tasks = []
    for rep in chosen:
        n_seeds = args.seeds or (max(3, rep.default_seeds) if args.full else rep.default_seeds)
        command = f"papershelf reproduce {rep.name}{options}"
        kw = dict(full=args.full, seeds=tuple(range(n_seeds)), device=device, command=command)
        tasks.append((rep, {**kw, "show_progress": show_progress, "threads": args.threads}))

    def report(outcome: Any) -> None:
        what = f"done in {outcome.runtime_s:.1f} s -> {outcome.out_dir}"
        if not outcome.ok:
            failures.append(outcome)
            what = f"FAILED after {outcome.runtime_s:.1f} s: {outcome.error}"
        print(f"      {outcome.name} {what}", flush=True)

    if jobs == 1:
        for i, (rep, kw) in enumerate(tasks, 1):
            print(f"[{i}/{len(tasks)}] {rep.name}: {rep.headline or rep.title}", flush=True)
            report(run_reproduction(rep, out, **kw))
    else:
        _run_parallel(tasks, out, jobs, report)
    path, table = write_summary(out)
    print(f"\n{table}\nSummary written to {path} ({time.perf_counter() - start:.1f} s in all)")
    if failures:
        names = ", ".join(f.name for f in failures)
        print(f"papershelf: {len(failures)} reproduction(s) failed: {names}", file=sys.stderr)
        return 1
    return 0


def _worker_init() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)  # clean up the temporary folder, then exit


def _run_parallel(tasks: list[Any], out: Path, jobs: int, report: Callable[..., None]) -> None:
    """Run reproductions in ``jobs`` worker processes; on Ctrl-C / SIGTERM stop them all."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from papershelf.core.reproduce import run_reproduction

    ctx = mp.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init)
    print(f"running {len(tasks)} packages, {jobs} at a time", flush=True)
    try:
        pending = set()
        for i, (rep, kw) in enumerate(tasks, 1):
            print(f"[{i}/{len(tasks)}] {rep.name}: {rep.headline or rep.title}", flush=True)
            pending.add(pool.submit(run_reproduction, rep, out, **kw))
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                report(fut.result())
    except BaseException:
        for proc in list(getattr(pool, "_processes", {}).values()):
            if proc.is_alive():
                proc.terminate()  # SIGTERM: each worker removes its temporary folder
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


class _Terminated(SystemExit):
    """SIGTERM, raised in the main thread so that ``finally`` blocks clean up."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated(143)


def _run_interruptible(cmd: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run ``cmd``; Ctrl-C exits 130 and SIGTERM 143, one line each, no traceback (the run in
    flight removes its temporary folder; finished packages keep their results)."""
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        return cmd(args)
    except KeyboardInterrupt:
        print("\npapershelf: interrupted (Ctrl-C); unfinished results discarded", file=sys.stderr)
        return 130
    except _Terminated:
        print("papershelf: terminated (SIGTERM); unfinished results discarded", file=sys.stderr)
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``papershelf`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    commands = {"list": _cmd_list, "cite": _cmd_cite}
    try:
        if args.command == "reproduce":
            return _run_interruptible(_cmd_reproduce, args)
        if args.command in commands:
            return commands[args.command](args)
    except _UsageError as exc:
        print(f"papershelf: error: {exc}", file=sys.stderr)
        return 2
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
