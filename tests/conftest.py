import os

import pytest
import torch

import mmdidb  # noqa: F401  (applies mmdidb.compat before anything else)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
