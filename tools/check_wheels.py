"""Build every published member with --no-sources and check each wheel as a user installs it.

    python tools/check_wheels.py [NAME ...]

Each paper package's wheel is installed with only the papershelf-core wheel beside it (the
workspace sources are stripped, as for a user on PyPI) into a fresh venv outside the workspace,
with the extras that its README's Install section names (``papershelf-<name>[a,b]``, in any of
its install lines). The check imports it, asks `papershelf list` to find it, and runs the
README's Usage quickstart there (offline, in an empty folder). Stdlib only.
"""

from __future__ import annotations

import argparse
import os
import re
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


QUICKSTART = r"""
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r"^##\s+Usage\b.*?$(.*?)(?=^##\s|\Z)", text, re.S | re.M)
blocks = re.findall(r"^```python[^\n]*\n(.*?)^```", m.group(1) if m else "", re.S | re.M)
assert blocks, "no python block in the README's Usage section"
ns = {"__name__": "__readme__"}
for code in blocks:
    exec(compile(code, "README:Usage", "exec"), ns)
"""


def readme_extras(folder: Path) -> list[str]:
    """The extras that the README's Install section names for this package, sorted."""
    text = (folder / "README.md").read_text(encoding="utf-8")
    m = re.search(r"^##\s+Install\b.*?$(.*?)(?=^##\s|\Z)", text, re.S | re.M)
    install = m.group(1) if m else ""
    stem = re.escape(folder.name).replace("\\-", "[-_]")
    found: set[str] = set()
    for group in re.findall(rf"papershelf[-_]{stem}[^\s\[\"']*\[([A-Za-z0-9_,\- ]+)\]", install):
        found.update(e.strip() for e in group.split(",") if e.strip())
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="package folders to check (default: all)")
    parser.add_argument("--core-only", action="store_true", help="check only papershelf-core")
    args = parser.parse_args(argv)
    folders = sorted(
        p.name for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file()
    )
    names = [] if args.core_only else (args.names or folders)
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
            extras = [] if name == "core" else readme_extras(ROOT / "packages" / name)
            suffix = f"[{','.join(extras)}]" if extras else ""
            to_install = (
                [str(core)]
                if name == "core"
                else [str(core), str(wheels[f"papershelf_{mod}"]) + suffix]
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
                if name != "core":
                    script = Path(tmp) / "quickstart.py"
                    script.write_text(QUICKSTART, encoding="utf-8")
                    work = Path(tmp) / f"work-{name}"
                    work.mkdir()
                    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
                    env.pop("VIRTUAL_ENV", None)
                    readme = ROOT / "packages" / name / "README.md"
                    run([str(py), str(script), str(readme)], cwd=work, env=env, timeout=600)
                shown = suffix or "(no extras)"
                print(
                    f"ok    {name:16s} {out.stdout.strip():8s} {shown:32s} "
                    f"{time.perf_counter() - t0:5.1f} s"
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired, RuntimeError) as exc:
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
