import pytest
import torch

import mmdidb  # noqa: F401  (applies mmdidb.compat before anything else)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
