"""The checkpoint checks, under their former import path.

They live in :mod:`mmdidb.utils.checkpoint_sources`; this module re-exports
them for ``mmdidb/models/backbones/pretrained.py``, which still imports them
from here. Remove it once that import names the new module.
"""
from ..utils.checkpoint_sources import (  # noqa: F401
    URL_TIMEOUT,
    CheckpointUnavailableError,
    check_checkpoint,
    check_config_checkpoints,
    checkpoint_problem,
    config_checkpoints,
    unavailable_message,
)
