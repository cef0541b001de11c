"""Switching a model to deploy mode, and telling deploy checkpoints apart.

mmpretrain's convention (RepVGG, MobileOne, ...): a module with a
``switch_to_deploy()`` method turns itself into its inference form. mmpretrain
1.2.0's ``ImageClassifier`` has no such method and calls none, so
:func:`switch_to_deploy` walks any model (classifier, segmentor, backbone)
and switches every submodule that has one.
"""
from typing import List, Mapping

from torch import nn

from .graph_runtime import enable_cuda_graph

#: Suffix of the state-dict entries that hold packed binary weights.
PACKED_SUFFIX = 'weight_packed'


def switch_to_deploy(model: nn.Module, cuda_graph: bool = False,
                     fused: bool = True, **graph_options) -> List[str]:
    """Call ``switch_to_deploy()`` on every submodule of ``model`` that has it.

    Each module converts itself only, and a second call is a no-op, so the
    order does not matter and calling it twice is harmless. Modules that
    have nothing binary to pack (full-precision layers of a W32 or A32
    model) stay in training form.

    Args:
        model (nn.Module): Any model, e.g. an ``ImageClassifier`` holding a
            ``DIDBViT``, or the backbone itself.
        cuda_graph (bool): Also run the backbone (or ``model``) through a
            CUDA graph, captured on the first CUDA call, replayed for that
            input shape, eager for others (see
            :mod:`mmdidb.models.deploy.graph_runtime`). Defaults to False.
        fused (bool): Pack the binary inputs of the linear layers and of
            Q·Kᵀ straight from ``x + shift`` (their RSign, the packing and,
            for the linears, the GEMM's scale and bias in fused kernels), so
            no ±1 input is written as floats (the ``fused_deploy`` attribute
            of those modules). The same numbers bit for bit; but those RSign
            modules are no longer called, so forward hooks on them stay
            silent: pass False to keep every binarizer running (for
            inspection). Defaults to True.
        **graph_options: Options of
            :class:`~mmdidb.models.deploy.graph_runtime.CUDAGraphRunner`.

    Returns:
        list[str]: Names of the modules now in deploy mode that were not
        before (``''`` is ``model`` itself); empty when there was nothing
        to switch.
    """
    modules = dict(model.named_modules())
    before = {name: getattr(m, 'deploy', False) for name, m in modules.items()}
    for module in modules.values():
        switch = getattr(module, 'switch_to_deploy', None)
        if callable(switch) and not getattr(module, 'deploy', False):
            switch()
    for module in modules.values():
        if getattr(module, 'deploy', False) and hasattr(module,
                                                        'fused_deploy'):
            module.fused_deploy = fused
    if cuda_graph:
        enable_cuda_graph(model, **graph_options)
    elif graph_options:
        raise TypeError('graph options need cuda_graph=True, got '
                        f'{sorted(graph_options)}')
    return [
        name for name, module in modules.items()
        if getattr(module, 'deploy', False) and not before[name]
    ]


def has_packed_weights(state_dict: Mapping, prefix: str = '') -> bool:
    """Whether ``state_dict`` holds packed binary weights under ``prefix``.

    Args:
        state_dict (Mapping): A state dict (keys with their module path).
        prefix (str): Only keys starting with it count. Defaults to ''.

    Returns:
        bool: True for a deploy checkpoint.
    """
    return any(
        key.startswith(prefix) and key.endswith(PACKED_SUFFIX)
        for key in state_dict)
