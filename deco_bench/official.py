"""Compatibility path: the official-checkpoint loader lives in `deco_bench.models.official`.

`from deco_bench.official import load_official` keeps working for code written against earlier releases.
"""

from deco_bench.models.official import (CheckpointMismatchError, OfficialFormatError,  # noqa: F401
                                        config_from_official_yaml, load_official)
