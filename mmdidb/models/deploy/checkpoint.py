"""The deploy checkpoint: packed 1-bit weights, float leftovers, a marker.

Layout (an ordinary mmengine checkpoint, loadable with ``weights_only``)::

    {'meta': {..., 'mmdidb_deploy': {'format_version': 1, ...}},
     'state_dict': {...}}

The state dict is that of the model after :func:`switch_to_deploy`: every
binary weight is an ``int32`` ``*.weight_packed`` entry (1 bit per weight,
32 per word along the input channels, bit 1 <-> +1) with its
``*.weight_scale``; the float binary weights are gone. Everything else (the
full-precision leftovers: patch embedding, head, norms, biases, scales,
activations) is kept in ``float_dtype``. Loading casts the leftovers back to
the model's dtype; a ``DIDBViT`` in training form switches itself to deploy
mode when it sees ``*.weight_packed`` entries, so ``tools/test.py`` and
mmpretrain's own tools evaluate deploy checkpoints unchanged.
"""
from typing import Optional

import torch
from torch import nn

from .switch import PACKED_SUFFIX

#: Key of the deploy description in the checkpoint's ``meta``.
META_KEY = 'mmdidb_deploy'
FORMAT_VERSION = 1
FLOAT_DTYPES = {'fp32': torch.float32, 'fp16': torch.float16}


def deploy_checkpoint(model: nn.Module,
                      float_dtype: str = 'fp32',
                      meta: Optional[dict] = None) -> dict:
    """The deploy checkpoint of a model already switched to deploy mode.

    Args:
        model (nn.Module): The model after
            :func:`~mmdidb.models.deploy.switch_to_deploy`.
        float_dtype (str): 'fp32' (default: the logits equal the training
            graph's up to the scales' rounding) or 'fp16' (half the size of
            the full-precision leftovers; the weights are rounded, so the
            logits move by more, see :mod:`mmdidb.models.deploy`).
        meta (dict, optional): The source checkpoint's meta (dataset
            classes, versions) to carry over.

    Returns:
        dict: ``{'meta': ..., 'state_dict': ...}``.

    Raises:
        ValueError: Unknown ``float_dtype``, or the model holds no packed
            weight (not switched, or nothing binary in it).
    """
    if float_dtype not in FLOAT_DTYPES:
        raise ValueError(f'float_dtype must be one of {sorted(FLOAT_DTYPES)}, '
                         f'got {float_dtype!r}')
    dtype = FLOAT_DTYPES[float_dtype]
    state = {}
    packed_bits = 0
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        if key.endswith(PACKED_SUFFIX):
            packed_bits += value.numel() * 32
        elif value.is_floating_point():
            value = value.to(dtype)
        state[key] = value.clone()
    if not packed_bits:
        raise ValueError('the model holds no packed binary weight: call '
                         'mmdidb.models.deploy.switch_to_deploy(model) first '
                         '(only W1A1 layers are packed)')
    meta = dict(meta or {})
    meta[META_KEY] = dict(
        format_version=FORMAT_VERSION,
        float_dtype=float_dtype,
        packed_words_bits=packed_bits,
        packed_keys=sum(k.endswith(PACKED_SUFFIX) for k in state))
    return dict(meta=meta, state_dict=state)
