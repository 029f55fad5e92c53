"""Checks on the test suite itself."""

import collections
import pathlib


def test_test_files_have_unique_basenames():
    # tests/ has no __init__.py, so pytest imports each test file by its basename: two files
    # with one name make collection fail for the whole suite.
    root = pathlib.Path(__file__).parent
    names = collections.Counter(p.name for p in root.rglob("test_*.py"))
    assert not [n for n, k in names.items() if k > 1], sorted(
        str(p.relative_to(root)) for p in root.rglob("test_*.py") if names[p.name] > 1)
