"""Check that the checkpoints a config starts from can be read.

The launch scripts (``tools/dist_train.sh``, ``tools/slurm_train.sh``) run
this once before they start the workers, so that a missing file or a URL
that cannot be fetched offline fails once, with the config key to
override, instead of in every worker (where rank 0 dies on a bare
``URLError`` and the others on "Connection closed by peer").

Usage::

    python tools/misc/check_checkpoints.py CONFIG [train.py options]

Only ``--cfg-options`` and ``--resume`` are read; other options are ignored.
Exits 0 when every checkpoint can be read, 1 (with the message) otherwise.
It imports only mmengine (the config is read without ``custom_imports``),
so it takes about a second.
"""
import argparse
import importlib.util
import os.path as osp
import sys

from mmengine.config import Config, DictAction


def load_checks():
    """:mod:`mmdidb.utils.checkpoint_sources`, without importing mmdidb.

    Importing the package would import mmpretrain and the models (seconds);
    the module itself needs only the standard library.
    """
    path = osp.join(osp.dirname(osp.abspath(__file__)), '..', '..', 'mmdidb',
                    'utils', 'checkpoint_sources.py')
    spec = importlib.util.spec_from_file_location('_checkpoint_sources', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    parser.add_argument('--resume', nargs='?', const='auto')
    args, _ = parser.parse_known_args(argv)
    if not osp.isfile(args.config):
        print(f'config file {args.config!r} does not exist', file=sys.stderr)
        return 1
    cfg = Config.fromfile(args.config, import_custom_modules=False)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.resume is not None:
        cfg.resume = True  # load_from is then not read
    checks = load_checks()
    try:
        checks.check_config_checkpoints(cfg)
    except checks.CheckpointUnavailableError as err:
        print(f'{args.config}: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
