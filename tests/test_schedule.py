"""`make test`'s xdist scheduling (tests/conftest.py) names real files and real sharing."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import LONGEST_FIRST, SHARED_WORKER, work_unit


def test_the_scheduled_files_exist_so_a_rename_cannot_drop_them_silently():
    for unit in LONGEST_FIRST:
        assert unit in SHARED_WORKER.values() or Path(unit).is_file(), unit
    for path in SHARED_WORKER:
        assert Path(path).is_file(), path


def test_the_files_on_one_worker_are_those_that_use_the_shared_fixture():
    takes_it = re.compile(r"def test_\w+\([^)]*\btrained_run\b")  # a test that asks for the fixture
    users = {str(p) for p in Path("tests").rglob("test_*.py") if takes_it.search(p.read_text())}
    assert users == {p for p, group in SHARED_WORKER.items() if group == "trained_run"}
    assert work_unit("tests/ray_jobs/test_fault_tolerance.py::test_x") == "trained_run"
    assert work_unit("tests/ray_jobs/test_tune.py::test_x[a::b]") == "tests/ray_jobs/test_tune.py"
