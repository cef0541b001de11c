import pytest
import torch
from mmengine.registry import DefaultScope

import mmdidb  # noqa: F401  (applies mmdidb.compat before anything else)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _fresh_default_scope():
    """Forget the default scopes that runners of earlier tests set.

    Every Runner makes its ``default_scope`` the current one for the rest of
    the process; a segmentation test would otherwise send later mmpretrain
    builds to mmseg's registries.
    """
    yield
    DefaultScope._instance_dict.clear()
