"""Suite-wide pytest set-up: the longest test files are collected first.

pytest-xdist (`make test`: -n auto --dist loadfile) hands whole files to its workers in collection order. Collected
alphabetically, the two pipeline files (minutes each, one module-scoped pipeline run apiece) came last and set
the suite's wall time; started first, the short files fill in around them (longest-first scheduling). Only the
order changes: every test and its fixtures are as before, and order within a file is kept.
"""

from __future__ import annotations

LONGEST_FIRST = ("test_pipeline.py", "test_pipeline_released.py", "test_metrics_inception_parity.py",
                 "test_kill_resume.py", "test_metrics_cleanfid.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FIRST)))  # stable: a file's order is kept
