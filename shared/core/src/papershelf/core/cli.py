"""The ``papershelf`` command: list the shelf, reproduce papers, cite them.

``papershelf --help`` and ``papershelf list`` import neither torch nor any paper's code.
"""

from __future__ import annotations

import argparse
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
    p_rep.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="number of seeds, 0..N-1 (default: each package's own, at least 3 with --full)",
    )
    p_rep.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p_rep.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p_rep.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch and BLAS (default: 1 for the quick profile on CPU, "
        "the library default otherwise)",
    )
    p_rep.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="packages run at once, each in its own process (default: 2 for the quick profile "
        "on CPU, where each run uses one thread; 1 otherwise)",
    )
    bar = p_rep.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="always show progress bars",
    )
    bar.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show progress bars"
    )

    p_cite = sub.add_parser("cite", help="print a paper's BibTeX")
    p_cite.add_argument("name", metavar="NAME")
    return parser


def _cmd_list(args: argparse.Namespace) -> int:
    from papershelf.core.registry import installed

    packages = installed()
    if not packages:
        print(
            "No paper packages are installed yet. Install one, e.g. `pip install papershelf-tmd`."
        )
        return 0
    rows = [("name", "version", "results", "paper")]
    out = Path(args.out)
    for pkg in packages:
        has = (out / pkg.name / "results.json").is_file()
        rows.append(
            (pkg.name, pkg.version, str(out / pkg.name) if has else "none yet", pkg.summary)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3])
    return 0


def _cmd_cite(args: argparse.Namespace) -> int:
    from papershelf.core.registry import UnknownReproductionError, get_reproduction

    try:
        rep = get_reproduction(args.name)
    except UnknownReproductionError as exc:
        print(f"papershelf: error: {exc}", file=sys.stderr)
        return 2
    print(rep.bibtex.strip())
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from papershelf.core.devices import resolve_device
    from papershelf.core.registry import UnknownReproductionError, discover, get_reproduction
    from papershelf.core.reproduce import run_reproduction, write_summary

    try:
        chosen = [get_reproduction(n) for n in args.names] or list(discover().values())
    except UnknownReproductionError as exc:
        print(f"papershelf: error: {exc}", file=sys.stderr)
        return 2
    if not chosen:
        print(
            "No paper packages are installed yet, so there is nothing to reproduce. "
            "Install one, e.g. `pip install papershelf-tmd`."
        )
        return 0
    if args.seeds is not None and args.seeds < 1:
        print("papershelf: error: --seeds must be at least 1", file=sys.stderr)
        return 2
    if args.threads is not None and args.threads < 1:
        print("papershelf: error: --threads must be at least 1", file=sys.stderr)
        return 2
    if args.jobs is not None and args.jobs < 1:
        print("papershelf: error: --jobs must be at least 1", file=sys.stderr)
        return 2
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        print(f"papershelf: error: {exc}", file=sys.stderr)
        return 2
    # each package's own default (its claims need seeds), at least 3 for --full
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".papershelf-write-check-{time.time_ns()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        print(f"papershelf: error: cannot write results to --out {out}: {reason}", file=sys.stderr)
        return 2
    # the command that reproduces a package's numbers (output folder and device aside)
    options = (" --full" if args.full else "") + (f" --seeds {args.seeds}" if args.seeds else "")
    failures = []
    start = time.perf_counter()
    jobs = args.jobs
    if jobs is None:  # quick CPU runs use one thread each: fill the cores with packages
        jobs = 1 if (args.full or device != "cpu") else min(2, os.cpu_count() or 1)
    jobs = max(1, min(jobs, len(chosen)))
    show_progress = args.progress if (jobs == 1 or args.progress is not None) else False
    tasks = []
    for rep in chosen:
        n_seeds = args.seeds or (max(3, rep.default_seeds) if args.full else rep.default_seeds)
        tasks.append(
            (
                rep,
                dict(
                    full=args.full,
                    seeds=tuple(range(n_seeds)),
                    device=device,
                    show_progress=show_progress,
                    command=f"papershelf reproduce {rep.name}{options}",
                    threads=args.threads,
                ),
            )
        )

    def report(i: int, outcome: Any) -> None:
        if outcome.ok:
            print(
                f"      {outcome.name} done in {outcome.runtime_s:.1f} s -> {outcome.out_dir}",
                flush=True,
            )
        else:
            failures.append(outcome)
            print(
                f"      {outcome.name} FAILED after {outcome.runtime_s:.1f} s: {outcome.error}",
                flush=True,
            )

    if jobs == 1:
        for i, (rep, kw) in enumerate(tasks, 1):
            print(f"[{i}/{len(tasks)}] {rep.name}: {rep.headline or rep.title}", flush=True)
            report(i, run_reproduction(rep, out, **kw))
    else:
        _run_parallel(tasks, out, jobs, report)
    path, table = write_summary(out)
    print()
    print(table)
    print(f"Summary written to {path} ({time.perf_counter() - start:.1f} s in all)")
    if failures:
        names = ", ".join(f.name for f in failures)
        print(f"papershelf: {len(failures)} reproduction(s) failed: {names}", file=sys.stderr)
        return 1
    return 0


def _worker_init() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)  # clean up the temporary folder, then exit


def _run_parallel(
    tasks: list[tuple[Any, dict[str, Any]]],
    out: Path,
    jobs: int,
    report: Callable[[int, Any], None],
) -> None:
    """Run reproductions in ``jobs`` worker processes; on Ctrl-C / SIGTERM stop them all."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from papershelf.core.reproduce import run_reproduction

    ctx = mp.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init)
    print(f"running {len(tasks)} packages, {jobs} at a time", flush=True)
    try:
        pending = {}
        for i, (rep, kw) in enumerate(tasks, 1):
            print(f"[{i}/{len(tasks)}] {rep.name}: {rep.headline or rep.title}", flush=True)
            pending[pool.submit(run_reproduction, rep, out, **kw)] = i
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                report(pending.pop(fut), fut.result())
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
    """Run ``cmd``; Ctrl-C exits 130 and SIGTERM 143, each with one line and no traceback.

    The reproduction in flight removes its temporary folder on the way out (see
    :func:`papershelf.core.reproduce.run_reproduction`); finished packages keep their results.
    """
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
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command == "list":
        return _cmd_list(args)
    if args.command == "cite":
        return _cmd_cite(args)
    if args.command == "reproduce":
        return _run_interruptible(_cmd_reproduce, args)
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
