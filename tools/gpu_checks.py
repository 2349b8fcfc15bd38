"""Every package's GPU measurement in one prepared run, each item under its own time cap.

Usage
-----
Here, on a CPU (stdlib only; the items run in child processes)::

    uv run --no-sync python tools/gpu_checks.py --list                   # items, caps, commands
    uv run --no-sync python tools/gpu_checks.py --smoke --out /tmp/gpu   # every item, tiny, CPU
    uv run --no-sync python tools/gpu_checks.py --prepare                # before a device session

``--prepare`` (needs PyPI) downloads into ``build/gpu-wheels`` the wheels the device image lacks
(diffusers, importlib_metadata, POT for CPython 3.12, at the versions installed here: 38 MB of
the 64 MiB a device call carries) and, when ``PAPERSHELF_INFOOT_OFFICIAL`` names a checkout of
chingyaoc/InfoOT, copies its ``infoot.py`` to ``build/official/infoot`` (``build/`` is ignored:
never committed, both travel by ``carry``). Without it the infoot item is skipped::

    git clone https://github.com/chingyaoc/InfoOT /tmp/infoot_official
    PAPERSHELF_INFOOT_OFFICIAL=/tmp/infoot_official uv run --no-sync python tools/gpu_checks.py --prepare

(``build/official/rince`` and ``build/official/hcl``, checkouts of chingyaoc/RINCE and
joshr17/HCL, are used the same way when present; their items run without them.)

On the device machine (its image has ``python3`` with torch, no uv and no network; this script
puts every member's ``src`` on ``PYTHONPATH`` and installs the carried wheels under /tmp)::

    run(
        command="python3 tools/gpu_checks.py --out $OUT",
        carry=["build/gpu-wheels", "build/official"],
        timeout_s=560,
    )

(``uv run --no-sync python tools/gpu_checks.py --out $OUT`` works the same where a venv exists.)
The items run in the order of the table below, cheapest and most wanted first, within
``--budget`` seconds of wall time (480 by default); each is killed at its own cap (or at the end
of the budget), so one slow item cannot eat the rest; an item is skipped when less than a minute
(or its cap) is left.
``--only NAME ...`` runs a subset. Under ``--out`` it writes three files (the device returns at
most eight): ``machine.txt`` (nvidia-smi, python/torch/CUDA versions, a bf16 matmul rate),
``logs.txt`` (every item's stdout and stderr, in order, kept when an item is killed) and
``summary.md`` (item, command, exit status, wall seconds, key lines), rewritten after each item;
the summary is also printed at the end.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / "build" / "gpu-wheels"
OFFICIAL = ROOT / "build" / "official"
Row = dict[str, Any]  # item, command, status, wall_s, key (lines)
#: distributions missing from the device image: name -> import name
DEVICE_WHEELS = {"diffusers": "diffusers", "importlib_metadata": "importlib_metadata", "pot": "ot"}


@dataclass(frozen=True)
class Item:
    name: str
    script: str  # relative to the repository root (or "-m module")
    gpu: str  # arguments on the GPU
    cap: int  # seconds, GPU run
    est: int  # estimated seconds on one H100 (from FLOPs and CPU timings; conservative)
    smoke: str  # arguments for the tiny CPU run
    needs: tuple[str, ...] = ("torch",)
    official: str = ""  # "ENV=folder under build/official": the env var is set when it exists
    official_required: bool = False
    option: str = ""  # the script must define this option, else the item is skipped

    def args(self, smoke: bool) -> list[str]:
        return [*self.script.split(), *(self.smoke if smoke else self.gpu).split()]


MG, FY = "packages/moviegen/benchmarks/", "packages/fairy/benchmarks/bench_fairy.py"
#: the tests parametrised over devices (papershelf.core.testing.with_devices): CUDA ids marked gpu
DEVICE_TESTS = (
    "packages/debias-vl/tests/test_debias_vl_debiaser.py packages/infoot/tests/test_infoot_api.py "
    "packages/kv-margin/tests/test_kv_margin_measure.py packages/kv-margin/tests/test_kv_margin_pgdl.py"
)
PYTEST = "-q -p no:cacheprovider -rs " + DEVICE_TESTS
ITEMS = [
    Item("moviegen-mfu", MG + "bench_mfu_gpu.py", "--preset 1b --peak-tflops 989", 120, 45,
         "--device cpu --preset tiny --grid 4 8 8 --batch 1 --iters 1", ("torch", "diffusers")),
    Item("cuda-tests", "-m pytest", "-m gpu " + PYTEST, 90, 30, "-k cpu " + PYTEST,
         ("torch", "pytest", "hypothesis", "ot", "sklearn", "h5py")),
    Item("fairy-sd15", FY, "--device cuda --threads 0 --gpu-sd15 --frames 120", 180, 60,
         "--device cpu --gpu-sd15 --frames 2 --chunk 2 --sd15-size 64x64 --sd15-steps 1",
         ("torch", "diffusers", "transformers")),
    Item("infoot-device", "packages/infoot/benchmarks/bench_infoot.py",
         "--skip exact plain fast --device cuda --device-sizes 1000 2000 5000", 150, 100,
         "--skip exact plain fast --device cpu --device-sizes 64 --device-steps 1",
         ("torch", "ot", "sklearn", "scipy"), "PAPERSHELF_INFOOT_OFFICIAL=infoot", True),
    Item("rince-loss", "packages/robust-infonce/benchmarks/bench_rince.py",
         "--device cuda --sizes 256 1024 4096", 60, 20, "--device cpu --sizes 16 --rounds 1",
         official="RINCE_OFFICIAL=rince", option="--device"),
    Item("hcl-loss", "packages/hard-negatives/benchmarks/bench_hcl.py",
         "--device cuda --sizes 256 1024 4096", 60, 20, "--device cpu --sizes 16 --rounds 1",
         official="HCL_OFFICIAL_DIR=hcl", option="--device"),
    # its smallest CPU run takes ~100 s (the probe's floor of 16 images per batch): smoke = import
    Item("contrastive-throughput", "packages/robust-infonce/benchmarks/bench_full_throughput.py",
         "--device cuda --workers 8", 150, 80, "--help", ("torch", "torchvision")),
    Item("fairy-attn", FY, "--device cuda --threads 0 --no-flops --levels 0 1 2 3", 90, 30,
         "--device cpu --frames 2 --size 16 --steps 1 --chunk 2 --attn-frames 2 --levels 3 "
         "--repeats 1 --no-flops", ("torch", "diffusers", "transformers")),
    Item("moviegen-mfu-ac", MG + "bench_mfu_gpu.py", "--preset 1b --grid 32 32 32 --ac selective",
         90, 40, "--device cpu --preset tiny --grid 4 8 8 --batch 1 --iters 1 --ac selective",
         ("torch", "diffusers")),
    Item("moviegen-vs-wan", MG + "bench_transformer.py", "--device cuda", 180, 90,
         "--device cpu --iters 1 --rounds 1", ("torch", "diffusers")),
]  # fmt: skip

MACHINE_PROBE = r"""
import json, os, platform, sys, time
info = {"python": sys.version.split()[0], "platform": platform.platform(),
        "cpus": os.cpu_count(), "load": os.getloadavg()}
try:
    import torch
    info.update(torch=torch.__version__, cuda=torch.version.cuda,
                cuda_available=torch.cuda.is_available())
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, memory_gib=round(p.total_memory / 2**30, 1),
                    sms=p.multi_processor_count, capability=f"{p.major}.{p.minor}",
                    cudnn=torch.backends.cudnn.version())
        a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        for i in range(13):
            if i == 3:
                torch.cuda.synchronize()
                t0 = time.perf_counter()
            a @ a
        torch.cuda.synchronize()
        info["bf16_matmul_8192_tflops"] = round(10 * 2 * 8192**3 / (time.perf_counter() - t0) / 1e12)
except ImportError as e:
    info["torch"] = f"missing ({e})"
for name in ("diffusers", "transformers", "ot", "sklearn", "scipy", "numpy", "torchvision"):
    try:
        info[name] = __import__(name).__version__
    except Exception as e:
        info[name] = f"missing ({type(e).__name__})"
print(json.dumps(info, indent=1))
"""


def child_env(site: Path | None, smoke: bool) -> dict[str, str]:
    """Every member's src on PYTHONPATH (the device has no venv), offline, unbuffered."""
    srcs = sorted(str(p) for p in [*ROOT.glob("packages/*/src"), *ROOT.glob("shared/*/src")])
    paths = ([str(site)] if site else []) + srcs + [os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))
    env.update(PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if smoke:  # a shared 2-core box: one thread, no GPU even if there is one
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    return env


def pip_command() -> list[str]:
    """``python -m pip``: this interpreter's, else (a uv venv has none) the one it was made from."""
    for python in (sys.executable, getattr(sys, "_base_executable", ""), shutil.which("python3")):
        if (
            python
            and subprocess.run([python, "-m", "pip", "-V"], capture_output=True).returncode == 0
        ):
            return [python, "-m", "pip"]
    raise SystemExit("no pip found to install or download wheels")


def install_wheels(folder: Path) -> Path | None:
    """Install the carried wheels whose module is missing into a temporary site folder."""

    def module(wheel: Path) -> str:
        dist = wheel.name.split("-")[0].lower()
        return DEVICE_WHEELS.get(dist, dist)

    wheels = [
        w for w in sorted(folder.glob("*.whl")) if importlib.util.find_spec(module(w)) is None
    ]
    if not wheels:
        return None
    site = Path(tempfile.mkdtemp(prefix="gpu-checks-site-"))
    cmd = [*pip_command(), "install", "-q", "--no-index", "--no-deps"]
    subprocess.run([*cmd, "--no-compile", "--target", str(site), *map(str, wheels)], check=True)
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    return site


def official_env(item: Item) -> tuple[dict[str, str], str]:
    """(environment for the item's official checkout, reason to skip or '')."""
    if not item.official:
        return {}, ""
    var, folder = item.official.split("=")
    if os.environ.get(var):
        return {}, ""
    path = OFFICIAL / folder
    if path.is_dir():
        return {var: str(path)}, ""
    why = f"skipped: no official checkout ({var} unset, build/official/{folder} absent)"
    return {}, why if item.official_required else ""


def skip_reason(item: Item) -> str:
    missing = [m for m in item.needs if importlib.util.find_spec(m) is None]
    if missing:
        return f"skipped: missing module {', '.join(missing)} (carry wheels: --prepare)"
    if item.option and f'"{item.option}"' not in (ROOT / item.script).read_text():
        return f"skipped: {Path(item.script).name} has no {item.option} option yet"
    return official_env(item)[1]


def key_lines(text: str, keep: int = 12) -> list[str]:
    """Table rows and result lines of an item's output (the last ``keep``), else its last line."""
    pat = re.compile(r"^\| (?!-)|MFU|skipped|Error|error:|Traceback|tokens/s|ms/step|FAILED|passed")
    rows = [ln for ln in text.splitlines() if pat.search(ln) and not ln.startswith("|---")]
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return rows[-keep:] or lines[-1:]


def run_item(item: Item, smoke: bool, timeout: float, env: dict[str, str], log: IO[str]) -> Row:
    """Run one item in its own process group, its output appended to ``log``; a result row."""
    argv = item.args(smoke)
    row = {"item": item.name, "command": "python " + " ".join(argv), "wall_s": 0.0, "key": []}
    reason = skip_reason(item)
    if reason:
        row["status"] = reason
        log.write(f"\n===== {item.name}: {reason}\n")
        log.flush()
        return row
    log.write(f"\n===== {item.name} (cap {timeout:.0f} s): {row['command']}\n")
    log.flush()
    start = os.fstat(log.fileno()).st_size
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *argv],
        cwd=ROOT,
        env={**env, **official_env(item)[0]},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        rc = proc.wait(timeout=timeout)
        row["status"] = f"exit {rc}"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the item and any workers it started
        proc.wait()
        row["status"] = f"timeout (killed at {timeout:.0f} s)"
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    with open(log.name, "rb") as f:
        f.seek(start)
        row["key"] = key_lines(f.read().decode("utf-8", errors="replace"))
    return row


def write_summary(out: Path, rows: list[Row], machine: str, smoke: bool) -> str:
    def cell(s: str) -> str:
        return s.replace("|", "\\|")[:160]

    mode = "smoke (tiny sizes, CPU)" if smoke else "GPU"
    md = [f"# GPU checks, {mode}\n", "```", machine.strip(), "```\n"]
    md += ["| item | command | exit status | wall s | key line |", "|---|---|---|---|---|"]
    for r in rows:
        last = r["key"][-1] if r["key"] else ""
        md.append(
            f"| {r['item']} | `{r['command']}` | {cell(r['status'])} | {r['wall_s']} | {cell(last)} |"
        )
    for r in rows:
        if r["key"]:
            md += [f"\n## {r['item']}\n", *r["key"]]
    text = "\n".join(md) + "\n"
    (out / "summary.md").write_text(text, encoding="utf-8")
    return text


def machine_summary(env: dict[str, str]) -> tuple[str, bool]:
    parts = []
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=60)
        parts.append(smi.stdout + smi.stderr)
    else:
        parts.append("nvidia-smi: not found")
    git = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--oneline"], capture_output=True,
                         text=True)  # fmt: skip
    parts.append("commit: " + (git.stdout.strip() or "unknown (no git)"))
    probe = subprocess.run([sys.executable, "-c", MACHINE_PROBE], capture_output=True, text=True,
                           env=env, timeout=120)  # fmt: skip
    parts.append(probe.stdout + probe.stderr)
    try:
        cuda = bool(json.loads(probe.stdout).get("cuda_available"))
    except ValueError:
        cuda = False
    return "\n".join(parts), cuda


def prepare() -> None:
    """Download the device's missing wheels (CPython 3.12, x86-64) and copy the official InfoOT."""
    WHEELS.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={metadata.version(name)}" for name in DEVICE_WHEELS]
    pip = pip_command()
    platforms = [f"--platform=manylinux_2_{n}_x86_64" for n in (17, 27, 28)]
    cmd = [*pip, "download", "--no-deps", "--only-binary=:all:", "--python-version=3.12",
           "--implementation=cp", *platforms, "-d", str(WHEELS), *pins]  # fmt: skip
    subprocess.run(cmd, check=True)
    src = os.environ.get("PAPERSHELF_INFOOT_OFFICIAL")
    if src and (Path(src) / "infoot.py").is_file():
        (OFFICIAL / "infoot").mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(src) / "infoot.py", OFFICIAL / "infoot" / "infoot.py")
    print(f"ready: {sorted(p.name for p in WHEELS.iterdir())}; official: "
          f"{sorted(str(p.relative_to(OFFICIAL)) for p in OFFICIAL.rglob('*.py'))}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, help="folder for machine.txt, logs.txt, summary.md")
    ap.add_argument("--smoke", action="store_true", help="every item at a tiny size on the CPU")
    ap.add_argument("--budget", type=float, help="total seconds (default 480; smoke 900)")
    ap.add_argument("--only", nargs="+", metavar="NAME", choices=[i.name for i in ITEMS])
    ap.add_argument("--list", action="store_true", help="print the items and their commands")
    ap.add_argument("--prepare", action="store_true", help="fetch what the device lacks (here)")
    ap.add_argument("--wheels", type=Path, default=WHEELS, help="carried wheels to install")
    args = ap.parse_args(argv)
    if args.list:
        print(f"{'item':24} {'cap s':>5} {'est s':>5}  command (GPU; then smoke)")
        for it in ITEMS:
            print(f"{it.name:24} {it.cap:5} {it.est:5}  python {' '.join(it.args(False))}")
            print(f"{'':36}  python {' '.join(it.args(True))}")
        return 0
    if args.prepare:
        prepare()
        return 0
    if args.out is None:
        ap.error("--out is required (or --list / --prepare)")
    budget = args.budget or (900.0 if args.smoke else 480.0)
    t_start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    site = install_wheels(args.wheels) if args.wheels.is_dir() else None
    env = child_env(site, args.smoke)
    machine, cuda = machine_summary(env)
    (args.out / "machine.txt").write_text(machine, encoding="utf-8")
    rows: list[Row] = []
    (args.out / "logs.txt").write_text("")
    with open(args.out / "logs.txt", "a", encoding="utf-8") as log:  # the items append to it
        for item in ITEMS:
            if args.only and item.name not in args.only:
                continue
            cap = min(item.cap, 180) if args.smoke else item.cap
            left = budget - (time.perf_counter() - t_start)
            if not args.smoke and not cuda:
                rows.append({"item": item.name, "command": "python " + " ".join(item.args(False)),
                             "status": "skipped: no CUDA device (use --smoke on a CPU)",
                             "wall_s": 0.0, "key": []})  # fmt: skip
            elif left < min(cap, 60):
                rows.append({"item": item.name, "command": "python " + " ".join(item.args(args.smoke)),
                             "status": f"skipped: budget spent ({left:.0f} s left)",
                             "wall_s": 0.0, "key": []})  # fmt: skip
            else:
                rows.append(run_item(item, args.smoke, min(cap, left), env, log))
            write_summary(args.out, rows, machine, args.smoke)
    print(write_summary(args.out, rows, machine, args.smoke))
    print(f"total {time.perf_counter() - t_start:.0f} s of a {budget:.0f} s budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
