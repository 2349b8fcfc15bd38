"""Render each package README's results section from its committed results/results.json.

    python tools/render_results.py                 # re-render every package README
    python tools/render_results.py tmd infoot      # only these
    python tools/render_results.py tmd --from papershelf-results
        # first copy papershelf-results/tmd/{results.json,results.md,*.png} into
        # packages/tmd/results/, then render
    python tools/render_results.py --check         # exit 1 if a README is out of date

Stdlib and papershelf-core only.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from papershelf.core.io import atomic_write_text
from papershelf.core.readme import render_results_block, replace_results_block

ROOT = Path(__file__).resolve().parents[1]


def package_dirs(names: list[str]) -> list[Path]:
    dirs = sorted(p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file())
    if not names:
        return dirs
    by_name = {p.name: p for p in dirs}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SystemExit(f"unknown package(s): {', '.join(unknown)}; known: {', '.join(by_name)}")
    return [by_name[n] for n in names]


def copy_results(pkg: Path, source_root: Path) -> None:
    src = source_root / pkg.name
    if not (src / "results.json").is_file():
        raise SystemExit(
            f"{src}/results.json does not exist: run `papershelf reproduce {pkg.name}` first"
        )
    dest = pkg / "results"
    dest.mkdir(exist_ok=True)
    for old in dest.iterdir():
        if old.is_file():
            old.unlink()
    for f in src.iterdir():
        if f.is_file() and f.suffix.lower() in {".json", ".md", ".png", ".svg"}:
            shutil.copy2(f, dest / f.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*")
    parser.add_argument(
        "--from", dest="source", type=Path, help="copy results from this reproduce --out folder"
    )
    parser.add_argument("--check", action="store_true", help="only check that READMEs are in sync")
    args = parser.parse_args(argv)
    stale = []
    for pkg in package_dirs(args.names):
        if args.source is not None:
            copy_results(pkg, args.source)
        results = pkg / "results" / "results.json"
        readme = pkg / "README.md"
        if not results.is_file():
            print(f"{pkg.name}: no results/results.json yet", file=sys.stderr)
            stale.append(pkg.name)
            continue
        text = readme.read_text(encoding="utf-8")
        new = replace_results_block(text, render_results_block(results))
        if new != text:
            if args.check:
                stale.append(pkg.name)
                print(f"{pkg.name}: README results section is out of date", file=sys.stderr)
            else:
                atomic_write_text(readme, new)
                print(f"{pkg.name}: README results section rendered")
        else:
            print(f"{pkg.name}: up to date")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    raise SystemExit(main())
