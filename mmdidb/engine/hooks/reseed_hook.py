"""Reseeding every epoch, so that a resumed run repeats the uninterrupted one."""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner.utils import set_random_seed


@HOOKS.register_module()
class ReseedHook(Hook):
    """Seed ``random``, numpy and torch from ``(seed, epoch)`` at each epoch.

    mmengine's checkpoints do not hold the random number generators' states,
    so after ``--resume`` augmentations, dropout and drop-path draw other
    numbers than the uninterrupted run did. Reseeding at every epoch start
    makes each epoch's randomness depend only on the seed and the epoch, so
    an interrupted run resumed from an epoch checkpoint ends with the same
    weights as an uninterrupted run. Exact for data loading in the main
    process (``num_workers=0``) or non-persistent workers; persistent workers
    keep their own generators.

    Args:
        seed (int, optional): Base seed. Defaults to the runner's seed.
    """

    priority = 'VERY_HIGH'

    def __init__(self, seed=None):
        self.seed = seed

    def before_train_epoch(self, runner) -> None:
        base = self.seed if self.seed is not None else runner.seed
        set_random_seed((base + 1000003 * runner.epoch) % 2**31,
                        diff_rank_seed=True)
