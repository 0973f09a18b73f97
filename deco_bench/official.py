"""Compatibility path: the official-checkpoint loader lives in `deco_bench.models.official`.

`from deco_bench.official import load_official` keeps working for code written against earlier releases.
"""

from deco_bench.models.official import CheckpointMismatchError, OfficialFormatError, config_from_official_yaml, load_official  # noqa: F401
