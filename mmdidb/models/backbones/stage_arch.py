"""Checking the archs of the DIDB backbones (per-stage lists for pyramids)."""
from typing import Iterable

STAGE_ARCH_KEYS = ('embed_dims', 'depths', 'num_heads')


def resolve_arch(name: str, arch, arch_zoo: dict,
                 keys: Iterable[str]) -> dict:
    """A copy of ``arch_zoo[arch]``, or of ``arch`` if a dict with ``keys``.

    Raises:
        ValueError: Neither; the message names the accepted values.
    """
    if isinstance(arch, str):
        if arch.lower() not in arch_zoo:
            raise ValueError(f'{name}: unknown arch {arch!r}; accepted: '
                             f'{", ".join(arch_zoo)} or a dict with '
                             f'{sorted(keys)}')
        arch = arch_zoo[arch.lower()]
    if not isinstance(arch, dict) or not set(keys) <= set(arch):
        raise ValueError(f'{name}: a custom arch must be a dict with '
                         f'{sorted(keys)}, got {arch!r}')
    return dict(arch)


def parse_stage_arch(name: str, arch, arch_zoo: dict,
                     keys: Iterable[str] = STAGE_ARCH_KEYS) -> dict:
    """Resolve a pyramid arch (name or dict) and check its per-stage lists."""
    arch = resolve_arch(name, arch, arch_zoo, keys)
    lists = [k for k in sorted(keys) if k != 'embed_dims']
    lengths = {k: len(arch[k]) for k in lists}
    if len(set(lengths.values())) != 1:
        raise ValueError(f'{name}: arch lists must have one entry per stage, '
                         f'got lengths {lengths}')
    dims = arch['embed_dims']
    dims = dims if isinstance(dims, (list, tuple)) else [
        dims * 2**i for i in range(lengths['depths'])]
    for i, (d, heads) in enumerate(zip(dims, arch['num_heads'])):
        if d % heads:
            raise ValueError(f'{name}: stage {i} has {d} channels, not '
                             f'divisible by num_heads[{i}]={heads}')
    return arch


def parse_stage_indices(name: str, out_indices, num_stages: int,
                        unit: str = 'stages') -> list:
    """Normalise ``out_indices`` (negative allowed) and range-check them.

    ``unit`` names what is indexed in the error (``'layers'`` for a plain
    ViT).
    """
    if isinstance(out_indices, int):
        out_indices = [out_indices]
    parsed = []
    for index in out_indices:
        real = num_stages + index if index < 0 else index
        if not 0 <= real < num_stages:
            raise ValueError(f'{name}: out_indices has {index}, outside the '
                             f'{num_stages} {unit}')
        parsed.append(real)
    return parsed
