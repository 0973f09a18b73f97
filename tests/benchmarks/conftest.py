"""Hooks of `make bench` (deco_bench.tools.pytest_baseline): each saved run carries deco-bench's hardware
fingerprint, a comparison with a run of other hardware is refused in one line, and a regression ends the run with
one line and exit status 1 instead of pytest-benchmark's traceback."""

from deco_bench.tools.pytest_baseline import (  # noqa: F401  (pytest finds hooks by name in a conftest)
    pytest_benchmark_compare_machine_info,
    pytest_benchmark_update_machine_info,
    pytest_configure,
    pytest_sessionstart,
    pytest_terminal_summary,
)
