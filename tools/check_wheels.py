"""Build every member with --no-sources and install each wheel alone into a fresh venv.

    python tools/check_wheels.py [NAME ...]

Each paper package's wheel is installed with only the papershelf-core wheel beside it
(the workspace sources are stripped, as for a user on PyPI) into a venv outside the
workspace; the check imports it and asks `papershelf list` to find it. Stdlib only.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def uv() -> list[str]:
    exe = shutil.which("uv")
    return [exe] if exe else [sys.executable, "-m", "uv"]


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)  # type: ignore[call-overload]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="package folders to check (default: all)")
    args = parser.parse_args(argv)
    folders = sorted(
        p.name for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file()
    )
    names = args.names or folders
    failures = []
    with tempfile.TemporaryDirectory(prefix="papershelf-wheels-") as tmp:
        dist = Path(tmp) / "dist"
        run(
            [*uv(), "build", "--all-packages", "--no-sources", "--wheel", "-o", str(dist)], cwd=ROOT
        )
        wheels = {w.name.split("-")[0]: w for w in dist.glob("*.whl")}
        core = wheels["papershelf_core"]
        for name in ["core", *names]:
            mod = name.replace("-", "_")
            t0 = time.perf_counter()
            venv = Path(tmp) / f"venv-{name}"
            run([*uv(), "venv", "-q", "--python", sys.executable, str(venv)])
            py = venv / "bin" / "python"
            to_install = (
                [str(core)] if name == "core" else [str(core), str(wheels[f"papershelf_{mod}"])]
            )
            try:
                run([*uv(), "pip", "install", "-q", "--python", str(py), *to_install])
                out = run(
                    [str(py), "-c", f"import papershelf.{mod} as m; print(m.__version__)"], cwd=tmp
                )
                listing = run([str(venv / "bin" / "papershelf"), "list", "--out", tmp], cwd=tmp)
                if name != "core" and not any(
                    line.startswith(name + " ") for line in listing.stdout.splitlines()
                ):
                    raise RuntimeError(f"papershelf list does not show {name}:\n{listing.stdout}")
                print(f"ok    {name:16s} {out.stdout.strip():8s} {time.perf_counter() - t0:5.1f} s")
            except (subprocess.CalledProcessError, RuntimeError) as exc:
                detail = getattr(exc, "stderr", "") or str(exc)
                print(f"FAIL  {name:16s} {detail.strip()[-2000:]}")
                failures.append(name)
            finally:
                shutil.rmtree(venv, ignore_errors=True)
    if failures:
        print(f"{len(failures)} wheel(s) failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
