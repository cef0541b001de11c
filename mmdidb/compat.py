"""Compatibility layer: the OpenMMLab 2.x stack on modern PyTorch.

mmengine 0.10.7, mmcv-lite 2.1.0, mmpretrain 1.2.0 and mmsegmentation 1.2.2
are unmaintained since 2024 and break on torch >= 2.6 in a few known places
(each entry below names the package, the failure and the fix). Every
workaround lives here,
runs first thing on ``import mmdidb`` (so before torchvision, ``mmcv.ops`` or
``mmseg`` are imported, which is what the stock tools do when they process
``custom_imports``) and follows three rules:

* it is a no-op where the real thing works (compiled mmcv ops installed,
  torchvision's ``_C`` loads, CUDA present, ...);
* it can be turned off: ``MMDIDB_COMPAT_SKIP=name1,name2`` (or ``all``) with
  the names of :data:`FIXES`;
* it logs once, on the ``mmdidb.compat`` logger, what it changed.

The fixes:

``mmcv_ext``
    Without compiled mmcv ops ``from mmcv.ops import point_sample`` (imported
    by ``mmseg.models``) fails on ``No module named 'mmcv._ext'``. A
    placeholder ``mmcv._ext`` is registered whose functions raise a clear
    error when a compiled op is really called; pure-PyTorch ops then work.
``torchvision_ops``
    PyPI torchvision links libtorch_cuda; beside the CPU torch build its
    ``_C`` cannot load and ``import torchvision`` dies on ``operator
    torchvision::nms does not exist``. The two op schemas its meta
    registrations need are defined, so torchvision imports and its compiled
    ops raise torchvision's own error if called.
``safe_checkpoint``
    torch >= 2.6 loads with ``weights_only=True``; mmengine checkpoints hold a
    few non-tensor globals (``HistoryBuffer``, numpy arrays and scalars). Those
    exact globals are allow-listed and mmengine's local-file loader is
    replaced by one that keeps ``weights_only=True`` and names the offending
    global when a pickle asks for anything else (e.g. ``os.system``).
``cpu_distributed``
    Distributed training on CPU (gloo): mmengine calls
    ``torch.cuda.set_device`` unconditionally, maps nothing to gloo, passes
    ``device_ids`` for CPU modules and keeps SyncBN. Patched only when CUDA
    is not available.
"""
import importlib
import importlib.machinery
import importlib.util
import logging
import os
import pickle
import sys
import types

FIXES = ('mmcv_ext', 'torchvision_ops', 'safe_checkpoint', 'cpu_distributed')
SKIP_ENV = 'MMDIDB_COMPAT_SKIP'

logger = logging.getLogger('mmdidb.compat')

#: name of each fix -> what it changed (filled by :func:`apply_all`).
_applied: dict = {}
_done: set = set()


def _log(name: str, message: str) -> None:
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter('%(name)s: %(message)s'))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    _applied[name] = message
    logger.info(message)


def skipped_fixes() -> set:
    """Names of the fixes turned off by the ``MMDIDB_COMPAT_SKIP`` variable."""
    raw = os.environ.get(SKIP_ENV, '')
    names = {n.strip() for n in raw.split(',') if n.strip()}
    if 'all' in names:
        return set(FIXES)
    unknown = names - set(FIXES)
    if unknown:
        raise ValueError(f'{SKIP_ENV} names unknown fixes {sorted(unknown)}; '
                         f'accepted: {", ".join(FIXES)} or "all"')
    return names


def applied_fixes() -> dict:
    """What each applied fix changed, by fix name (empty if all were no-ops)."""
    return dict(_applied)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def openmmlab_available() -> bool:
    """Whether mmengine, mmcv and mmpretrain are installed (the model side)."""
    return all(_installed(m) for m in ('mmengine', 'mmcv', 'mmpretrain'))


# --------------------------------------------------------------- mmcv._ext
class MissingCompiledOpError(RuntimeError):
    """A compiled mmcv op was called but only mmcv-lite is installed."""


class _MissingExtModule(types.ModuleType):
    """Stands in for ``mmcv._ext``; every attribute is a function that raises.

    ``mmcv.utils.ext_loader.load_ext`` only checks ``hasattr`` at import time,
    so modules that merely import compiled ops load, and calling one fails
    loudly instead of computing something else.
    """

    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)

        def missing_op(*args, **kwargs):
            raise MissingCompiledOpError(
                f'mmcv compiled op "{name}" was called, but only mmcv-lite '
                '(no compiled ops) is installed. Install the full mmcv '
                'package built for your torch, or use a model that does not '
                'need this op.')

        missing_op.__name__ = name
        return missing_op


def _fix_mmcv_ext() -> None:
    if 'mmcv._ext' in sys.modules or not _installed('mmcv'):
        return
    if _installed('mmcv._ext'):
        return  # compiled ops are installed: nothing to do
    module = _MissingExtModule('mmcv._ext')
    # mmengine's mmcv_full_available() calls pkgutil.find_loader('mmcv._ext'),
    # which needs a real spec on the module.
    module.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', loader=None)
    module.__file__ = None
    sys.modules['mmcv._ext'] = module
    _log('mmcv_ext', 'compiled mmcv ops are not installed (mmcv-lite): '
         'registered a placeholder mmcv._ext whose ops raise when called')


# --------------------------------------------------------- torchvision ops
_TORCHVISION_SCHEMAS = (
    'nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor',
    'qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor',
)
_torchvision_library = None  # kept alive: the schemas live as long as it


def _torchvision_c_loads() -> bool:
    import torch
    spec = importlib.util.find_spec('torchvision')
    if spec is None or not spec.submodule_search_locations:
        return True  # no torchvision: nothing to fix
    folder = list(spec.submodule_search_locations)[0]
    libs = [f for f in os.listdir(folder)
            if f.startswith('_C') and f.endswith(('.so', '.pyd'))]
    if not libs:
        return False
    try:
        torch.ops.load_library(os.path.join(folder, libs[0]))
    except (OSError, RuntimeError):
        return False
    return True


def _fix_torchvision_ops() -> None:
    global _torchvision_library
    if 'torchvision' in sys.modules or not _installed('torchvision'):
        return
    if _torchvision_c_loads():
        return
    import torch
    _torchvision_library = torch.library.Library('torchvision', 'DEF')
    for schema in _TORCHVISION_SCHEMAS:
        _torchvision_library.define(schema)
    _log('torchvision_ops', "torchvision's compiled ops do not load beside "
         'this torch build: defined the torchvision::nms/qnms schemas so '
         'torchvision imports (its compiled ops raise if called)')


# ------------------------------------------------------- safe checkpoints
class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint asked for a pickled global outside the allow-list."""


def _history_buffer_getattr(obj, name):
    """``getattr`` limited to what mmengine's ``HistoryBuffer`` pickles.

    A ``HistoryBuffer`` pickles its statistics methods (``min``, ``max``,
    ...) as ``builtins.getattr(HistoryBuffer, name)``. Allowing the real
    ``getattr`` would let a pickle walk from any allowed object to
    ``os.system``, so this stand-in answers only those method names on
    ``HistoryBuffer`` and its instances.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    allowed = set(HistoryBuffer._statistics_methods) | {
        'min', 'max', 'mean', 'current'
    }
    is_buffer = obj is HistoryBuffer or isinstance(obj, HistoryBuffer)
    if not is_buffer or name not in allowed:
        raise pickle.UnpicklingError(
            f'checkpoint asks for getattr({obj!r:.60}, {name!r}), '
            'which an mmengine checkpoint never does')
    return getattr(obj, name)


def _empty_bytes(*args):
    """``bytes`` limited to ``bytes()``, as an empty numpy array pickles.

    A never-updated ``HistoryBuffer`` holds empty arrays, whose pickled data
    is ``builtins.bytes()`` (non-empty arrays use ``_codecs.encode``, which
    torch allows). Any argument is refused: ``bytes(n)`` would let a pickle
    allocate ``n`` bytes.
    """
    if args:
        raise pickle.UnpicklingError(
            f'checkpoint asks for bytes{args!r:.60}, which an mmengine '
            'checkpoint never does')
    return b''


def checkpoint_safe_globals() -> list:
    """The non-tensor globals an mmengine checkpoint holds, and only those."""
    import numpy as np
    globals_ = [np.ndarray, np.dtype]
    # numpy >= 2 moved the private core module; pickles name either path.
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    globals_ += [_reconstruct, scalar, (_empty_bytes, 'builtins.bytes')]
    for name in ('float16', 'float32', 'float64', 'int8', 'int16', 'int32',
                 'int64', 'uint8', 'bool'):
        globals_.append(type(np.dtype(name)))
    try:
        from mmengine.logging.history_buffer import HistoryBuffer
    except ImportError:
        return globals_
    globals_.append(HistoryBuffer)
    globals_.append((_history_buffer_getattr, 'builtins.getattr'))
    return globals_


def safe_torch_load(file, map_location=None):
    """``torch.load`` with ``weights_only=True`` and mmengine's globals.

    Args:
        file (str | file-like): The checkpoint.
        map_location: As for :func:`torch.load`.

    Raises:
        UnsafeCheckpointError: The pickle asks for a global that is not one
            of :func:`checkpoint_safe_globals` (e.g. ``os.system``).
    """
    import torch
    with torch.serialization.safe_globals(checkpoint_safe_globals()):
        try:
            return torch.load(file, map_location=map_location,
                              weights_only=True)
        except pickle.UnpicklingError as err:
            name = file if isinstance(file, str) else type(file).__name__
            raise UnsafeCheckpointError(
                f'Refused to load checkpoint {name}: it asks for a pickled '
                'object that a model checkpoint does not hold, so loading it '
                'could run arbitrary code. Details from torch: '
                f'{str(err).splitlines()[0] if str(err) else err!r}. Only '
                'if you trust the file, load it yourself with '
                'torch.load(..., weights_only=False) and save its '
                'state_dict.') from err


def _fix_safe_checkpoint() -> None:
    if not _installed('mmengine'):
        return
    import torch
    if not hasattr(torch.serialization, 'safe_globals'):
        return  # torch < 2.4 has no allow-list; mmengine's loader works
    from mmengine.runner import checkpoint as mm_checkpoint

    def load_from_local(filename, map_location):
        filename = os.path.expanduser(filename)
        if not os.path.isfile(filename):
            raise FileNotFoundError(f'{filename} can not be found.')
        return safe_torch_load(filename, map_location)

    if getattr(mm_checkpoint.load_from_local, '_mmdidb', False):
        return
    load_from_local._mmdidb = True
    mm_checkpoint.CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)
    mm_checkpoint.load_from_local = load_from_local
    _log('safe_checkpoint', 'local checkpoints load with weights_only=True '
         "and an allow-list of mmengine's checkpoint globals")


# ------------------------------------------------------- CPU distributed
def _fix_cpu_distributed() -> None:
    if not _installed('mmengine'):
        return
    import torch
    if torch.cuda.is_available():
        return
    from mmengine.dist import utils as dist_utils
    from mmengine.model import revert_sync_batchnorm
    from mmengine.model.wrappers import MMDistributedDataParallel

    original_init_dist = dist_utils._init_dist_pytorch
    if getattr(original_init_dist, '_mmdidb', False):
        return

    def init_dist_pytorch(backend, init_backend='torch', **kwargs):
        if backend == 'nccl':
            backend = 'gloo'  # nccl needs CUDA
        torch.distributed.init_process_group(backend=backend, **kwargs)

    init_dist_pytorch._mmdidb = True
    dist_utils._init_dist_pytorch = init_dist_pytorch

    original_ddp_init = MMDistributedDataParallel.__init__

    def ddp_init(self, module, *args, **kwargs):
        # DDP refuses device_ids for CPU modules, torch SyncBN refuses CPU.
        kwargs.pop('device_ids', None)
        module = revert_sync_batchnorm(module)
        original_ddp_init(self, module, *args, **kwargs)

    MMDistributedDataParallel.__init__ = ddp_init
    _log('cpu_distributed', 'CUDA is not available: distributed runs use '
         'gloo, CPU DDP without device_ids, and plain BN instead of SyncBN')


_FIX_FUNCTIONS = {
    'mmcv_ext': _fix_mmcv_ext,
    'torchvision_ops': _fix_torchvision_ops,
    'safe_checkpoint': _fix_safe_checkpoint,
    'cpu_distributed': _fix_cpu_distributed,
}


def apply_all() -> dict:
    """Apply every fix not turned off by ``MMDIDB_COMPAT_SKIP``; idempotent.

    Returns:
        dict: What each fix changed (see :func:`applied_fixes`).
    """
    skip = skipped_fixes()
    for name in FIXES:
        if name in skip or name in _done:
            continue
        _done.add(name)
        _FIX_FUNCTIONS[name]()
    return applied_fixes()
