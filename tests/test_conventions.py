"""Conventions every member of the shelf meets, applied to each member automatically."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from papershelf.core.registry import ENTRY_POINT_GROUP, Reproduction, discover
from papershelf.core.testing import run_readme_quickstart

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from readme_blocks import RESULTS_END, RESULTS_START, render_results_block, section  # noqa: E402

PACKAGES = sorted(p for p in (ROOT / "packages").glob("*") if (p / "pyproject.toml").is_file())
SHARED = sorted(p for p in (ROOT / "shared").glob("*") if (p / "pyproject.toml").is_file())
MEMBERS = [*SHARED, *PACKAGES]
# Unpublished workspace members ("Private :: Do Not Upload"): a published package may import one
# only from its reproduction, and declares it in its `test` dependency group, not in its metadata.
UNPUBLISHED = {"papershelf-contrastive-bench"}
README_SECTIONS = ["Install", "Usage", "Reproduce", "Results", "Citation"]

# import name -> distribution name, where they differ
IMPORT_TO_DIST = {
    "ot": "pot",
    "sklearn": "scikit-learn",
    "torch_geometric": "torch-geometric",
    "PIL": "pillow",
    "imageio_ffmpeg": "imageio-ffmpeg",
    "yaml": "pyyaml",
    "cv2": "opencv-python",
    "open_clip": "open-clip-torch",
}


def pyproject(member: Path) -> dict:
    return tomllib.loads((member / "pyproject.toml").read_text(encoding="utf-8"))


def module_name(member: Path) -> str:
    return "papershelf." + member.name.replace("-", "_")


def ids(members: list[Path]) -> list[str]:
    return [m.name for m in members]


@pytest.mark.parametrize("member", MEMBERS, ids=ids(MEMBERS))
def test_layout_and_metadata(member: Path) -> None:
    meta = pyproject(member)
    project = meta["project"]
    mod = module_name(member)
    expected = f"papershelf-{member.name}"
    assert project["name"] == expected
    assert project["requires-python"] == ">=3.11"
    assert meta["build-system"]["build-backend"] == "uv_build"
    assert meta["tool"]["uv"]["build-backend"]["module-name"] == mod
    src = member / "src" / "papershelf"
    assert not (src / "__init__.py").exists(), "papershelf is a PEP 420 namespace: no __init__.py"
    pkg = src / mod.split(".")[1]
    assert (pkg / "py.typed").is_file()
    for name in ("README.md", "LICENSE", "CHANGELOG.md"):
        assert (member / name).is_file(), f"{member.name} has no {name}"
    assert project["version"] in (member / "CHANGELOG.md").read_text(encoding="utf-8")
    assert (member / "tests").is_dir() and any((member / "tests").glob("test_*.py"))


@pytest.mark.parametrize("member", MEMBERS, ids=ids(MEMBERS))
def test_public_api(member: Path) -> None:
    module = importlib.import_module(module_name(member))
    assert isinstance(module.__all__, list | tuple) and module.__all__
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{module.__name__}.__all__ names missing attributes: {missing}"
    assert module.__version__ == pyproject(member)["project"]["version"]


@pytest.mark.parametrize("member", PACKAGES, ids=ids(PACKAGES))
def test_core_requirement_is_bounded(member: Path) -> None:
    reqs = [Requirement(r) for r in pyproject(member)["project"]["dependencies"]]
    core = [r for r in reqs if r.name == "papershelf-core"]
    assert len(core) == 1, "every paper package depends on papershelf-core"
    ops = {s.operator for s in core[0].specifier}
    assert ">=" in ops and "<" in ops, f"papershelf-core needs a bounded range, got {core[0]}"


def _imported_distributions(member: Path) -> set[str]:
    own = module_name(member)
    found: set[str] = set()
    for path in (member / "src").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "__future__":
                    continue
                if top == "papershelf":
                    sub = ".".join(name.split(".")[:2])
                    if sub != own:
                        found.add("papershelf-" + name.split(".")[1].replace("_", "-"))
                    continue
                found.add(IMPORT_TO_DIST.get(top, top).lower().replace("_", "-"))
    return found


@pytest.mark.parametrize("member", MEMBERS, ids=ids(MEMBERS))
def test_dependencies_match_imports(member: Path) -> None:
    project = pyproject(member)["project"]
    hard = {Requirement(r).name.lower() for r in project["dependencies"]}
    extras = {
        Requirement(r).name.lower()
        for reqs in project.get("optional-dependencies", {}).values()
        for r in reqs
    }
    imported = _imported_distributions(member)
    undeclared = imported - hard - extras - UNPUBLISHED
    assert not undeclared, f"{member.name} imports undeclared distributions: {sorted(undeclared)}"
    unused = hard - imported
    assert not unused, f"{member.name} requires distributions it never imports: {sorted(unused)}"


@pytest.mark.parametrize("member", PACKAGES, ids=ids(PACKAGES))
def test_reproduce_entry_point(member: Path) -> None:
    eps = pyproject(member)["project"]["entry-points"]["papershelf.reproduce"]
    mod = module_name(member)
    assert eps == {member.name: f"{mod}._registry:REPRODUCTION"}
    [ep] = [e for e in entry_points(group=ENTRY_POINT_GROUP) if e.name == member.name]
    rep = discover([ep], strict=True)[member.name]
    assert isinstance(rep, Reproduction)
    assert rep.distribution == f"papershelf-{member.name}"
    assert rep.bibtex.strip().startswith("@") and rep.title and rep.url.startswith("http")
    assert callable(rep.load_runner())


@pytest.mark.parametrize("member", PACKAGES, ids=ids(PACKAGES))
def test_readme_sections_and_generated_results(member: Path) -> None:
    readme = (member / "README.md").read_text(encoding="utf-8")
    heads = re.findall(r"^## (\w+)", readme, re.M)
    order = [h for h in heads if h in README_SECTIONS]
    assert order == README_SECTIONS, f"README sections {heads} lack or misorder {README_SECTIONS}"
    assert RESULTS_START in section(readme, "Results") and RESULTS_END in readme
    results = member / "results" / "results.json"
    assert results.is_file(), f"run tools/render_results.py {member.name} --from <reproduce out>"
    block = render_results_block(results)
    assert block in readme, (
        f"{member.name}: README results are out of date: python tools/render_results.py {member.name}"
    )
    assert "bibtex" in section(readme, "Citation").lower() or "@" in section(readme, "Citation")


@pytest.mark.parametrize("member", MEMBERS, ids=ids(MEMBERS))
def test_readme_quickstart_runs(member: Path) -> None:
    run_readme_quickstart(member / "README.md")


HEAVY = ("torch", "torch_geometric", "transformers", "diffusers", "ot", "sklearn", "scipy")


def _imports_after(code: str) -> list[str]:
    probe = (
        "import sys, io, contextlib\n"
        f"{code}\n"
        f"print('loaded:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    last = out.stdout.strip().splitlines()[-1]
    return [m for m in last.removeprefix("loaded:").split(",") if m]


def test_list_help_and_unknown_names_import_nothing_heavy() -> None:
    quiet = (
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):"
    )
    for argv in (["list"], ["--help"], ["reproduce", "nosuch"], ["cite", "nosuch"]):
        code = f"from papershelf.core import cli\n{quiet}\n    try: cli.main({argv!r})\n    except SystemExit: pass"
        assert _imports_after(code) == [], f"papershelf {' '.join(argv)} imported heavy modules"
    assert _imports_after("import papershelf.core") == []


@pytest.mark.parametrize("member", PACKAGES, ids=ids(PACKAGES))
def test_cite_and_package_import_are_lazy(member: Path) -> None:
    """`papershelf cite NAME` and `import papershelf.NAME` load no torch (PEP 562 packages)."""
    quiet = "with contextlib.redirect_stdout(io.StringIO()):"
    code = f"from papershelf.core import cli\n{quiet}\n    assert cli.main(['cite', {member.name!r}]) == 0"
    assert _imports_after(code) == [], f"papershelf cite {member.name} imported heavy modules"
    assert _imports_after(f"import {module_name(member)}") == []


def test_core_stays_thin() -> None:
    """Issue 23: the core's source stays under 1,600 lines (paper code lives in the packages)."""
    src = ROOT / "shared" / "core" / "src" / "papershelf" / "core"
    lines = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in src.glob("*.py"))
    assert lines < 1600, f"papershelf.core has {lines} source lines; keep it under 1,600"
