"""What a user of a trained model calls: loading configs and models.

- :func:`load_config`: a config file, with a clear error when it is missing;
- :mod:`mmdidb.apis.inspection`: build a config's model and load its
  checkpoint (``load_model``), and look inside a DIDB-ViT (its attention
  inputs, binary masks and DIBA's effective weights). It imports the models,
  so it is imported on its own: ``from mmdidb.apis.inspection import
  load_model``.
"""
import os.path as osp

from mmengine.config import Config


def load_config(path: str) -> Config:
    """Read a config file, with a clear error when it is not there.

    Args:
        path (str): The config file.

    Returns:
        Config: The config.

    Raises:
        FileNotFoundError: ``path`` is not a file.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file {path!r} does not exist')
    return Config.fromfile(path)
