"""The layering of ../shared/DESIGN.md and docs/architecture.md, checked on every module's imports.

The imports are read with `ast` (nothing is imported), so a forbidden import fails here even
when it sits inside a function body.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("modules", "sharding", "ray_jobs", "tune_spaces")
ENTRY_POINTS = {p.stem for p in (ROOT / "ray_jobs").glob("*.py") if p.stem != "__init__"}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Every module `path` imports, at any depth of its code (relative imports resolved)."""
    here = module_name(path, root).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _starts(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(paths: list[Path], forbidden: tuple[str, ...], root: Path = ROOT) -> list[str]:
    return [f"{p.relative_to(root)} imports {m}" for p in paths for m in sorted(imported_modules(p, root))
            if _starts(m, forbidden)]


RULES = [
    ("modules", ("sharding", "ray_jobs", "ray")),
    ("sharding", ("ray_jobs", "ray")),
    ("ray_jobs/core", ("ray_jobs.data", "ray_jobs.training", "ray_jobs.evaluation", "ray_jobs.experiments",
                       "ray_jobs.reports", "ray_jobs.benchmarks", "ray_jobs.serving")),
    ("ray_jobs/evaluation", ("ray",)),
    ("ray_jobs/reports", ("ray",)),
    ("tune_spaces", ("ray_jobs", "sharding", "modules", "ray.train", "ray.data")),
]


@pytest.mark.parametrize("room,forbidden", RULES, ids=[r for r, _ in RULES])
def test_room_imports_only_what_the_layering_allows(room, forbidden):
    assert violations(sources(room), forbidden) == []


def test_no_module_imports_an_entry_point():
    entry_points = tuple(f"ray_jobs.{e}" for e in ENTRY_POINTS)
    found = [v for package in PACKAGES for v in violations(sources(package), entry_points)]
    assert found == []


def test_entry_points_are_thin():
    long = {e: n for e in ENTRY_POINTS if (n := len((ROOT / "ray_jobs" / f"{e}.py").read_text().splitlines())) > 60}
    assert long == {}


def test_the_checker_sees_forbidden_imports_anywhere(tmp_path):
    """The rules above would pass vacuously if the parser missed imports: check it finds them."""
    probe = tmp_path / "ray_jobs" / "evaluation" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("import os\nfrom ray_jobs.training import loop\nfrom . import metrics\n"
                     "def f():\n    import ray.train\n    from ..core.config import JobConfig\n")
    found = imported_modules(probe, tmp_path)
    assert {"ray.train", "ray_jobs.training.loop", "ray_jobs.evaluation.metrics", "ray_jobs.core.config"} <= found
    assert violations([probe], ("ray",), tmp_path) == ["ray_jobs/evaluation/probe.py imports ray.train"]
    assert violations([probe], ("ray_jobs.train",), tmp_path) == []  # a prefix of a name is not the module


# What the processes that never build a model import: the driver of a training job or search
# (and a Tune trial's process), Ray Train's controller and dataset manager, which unpickle the
# job config and the ingest. TorchRec and FBGEMM cost 2-3 s of CPU per such process (issue 19).
MODEL_FREE_MODULES = ("ray_jobs.train", "ray_jobs.tune", "ray_jobs.training.job", "ray_jobs.training.entry",
                      "ray_jobs.experiments.search", "ray_jobs.data.ingest", "ray_jobs.core.config")


def test_driver_side_modules_import_without_torchrec():
    probe = (f"import sys\nfor m in {MODEL_FREE_MODULES!r}: __import__(m)\n"
             "print(sorted(m for m in ('torchrec', 'fbgemm_gpu') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
    # the worker's side does import them (the probe would pass vacuously if it never could)
    out = subprocess.run([sys.executable, "-c", "import sys, ray_jobs.training.loop; print('torchrec' in sys.modules)"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "True", out.stderr[-2000:]
