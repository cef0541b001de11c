"""Failing early, and clearly, when the checkpoint a run starts from is missing."""
import os.path as osp

from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import BaseLoop


@HOOKS.register_module()
class LoadFromCheckHook(Hook):
    """Refuse to train when ``load_from`` names a local file that is missing.

    Distilled configs start from a checkpoint another config writes: the
    full-precision model (single-stage, stage 1) or the stage-1 result
    (stage 2). mmengine notices a missing ``load_from`` only when it loads
    it, with a message that names neither the field nor what writes the
    file. This hook checks in ``before_run`` (before weights are
    initialised or loaded, so before any training step) and says how to
    make or override the file.

    It checks training runs only: ``tools/test.py`` replaces ``load_from``
    with the checkpoint under test, and a resumed run (``--resume``) reads
    its own work directory instead. URLs are left to the loader.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        # mmengine builds the train loop before `before_run` only in
        # `runner.train()`; val/test runs keep the config (or None) here.
        if not isinstance(runner._train_loop, BaseLoop) or runner._resume:
            return
        path = runner._load_from
        if not path or '://' in str(path) or osp.isfile(path):
            return
        raise FileNotFoundError(
            f'load_from={path!r} does not exist. This config starts from '
            'that checkpoint (the full-precision model for single-stage and '
            'stage-1 configs, the stage-1 result for stage-2 configs): train '
            'the config that writes it first (tools/two_stage_train.sh '
            'STAGE1 STAGE2 runs both stages in order), or pass --cfg-options '
            'load_from=PATH (load_from=None starts from scratch).')
