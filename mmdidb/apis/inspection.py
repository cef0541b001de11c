"""Look inside a trained DIDB-ViT: its attention inputs, masks and weights.

Shared by ``tools/visualization/vis_attention.py`` and
``tools/analysis/diba_stats.py``.
"""
import contextlib
from typing import Optional

import numpy as np
import torch
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import load_checkpoint

from ..models.backbones import DIDBViT
from ..models.layers.diba import add_self_term
from . import load_config


def load_model(config: str, checkpoint: Optional[str] = None,
               cfg_options: Optional[dict] = None):
    """Build the model of a config (any scope), load a checkpoint, eval mode.

    Returns:
        tuple: ``(model, cfg)``.
    """
    import mmdidb  # noqa: F401  (registers our modules, applies compat)
    cfg = load_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = cfg.model.copy()
    model_cfg.pop('init_cfg', None)
    if isinstance(model_cfg.get('backbone'), dict):
        # the checkpoint has the weights; do not fetch pretrained ones
        model_cfg.backbone = dict(model_cfg.backbone, init_cfg=None)
    model = MODELS.build(model_cfg)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    return model.eval(), cfg


def find_didb_vit(model) -> DIDBViT:
    """The model's :class:`DIDBViT` backbone; a clear error without one."""
    backbone = getattr(model, 'backbone', model)
    if not isinstance(backbone, DIDBViT):
        raise TypeError(f'expected a DIDBViT backbone (any DIDBViT config), '
                        f'got {type(backbone).__name__}')
    return backbone


def load_image(path: str, model, backbone: DIDBViT) -> tuple:
    """Read an image file as the model's normalised input.

    The image is converted to the backbone's channel count (grey for one
    channel) and resized to its ``img_size``; mean and std are the model's
    data preprocessor's.

    Returns:
        tuple: ``(inputs (1, C, H, W), image (H, W[, C]) uint8 array)``.
    """
    from PIL import Image
    channels = backbone.patch_embed.projection.in_channels
    height = backbone.patch_resolution[0] * backbone.patch_size
    width = backbone.patch_resolution[1] * backbone.patch_size
    image = Image.open(path).convert('L' if channels == 1 else 'RGB')
    image = np.asarray(image.resize((width, height), Image.BILINEAR))
    x = torch.from_numpy(image.copy()).float()
    x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
    pre = model.data_preprocessor
    if getattr(pre, '_enable_normalize', False):
        x = (x - pre.mean.cpu()) / pre.std.cpu()
    return x[None], image


@contextlib.contextmanager
def record_attention_inputs(backbone: DIDBViT):
    """Record ``(x, hw_shape)`` entering each layer's DIBA, in a list."""
    records = []
    handles = [
        layer.attn.register_forward_pre_hook(
            lambda module, args: records.append(
                (args[0].detach(), tuple(args[1]))))
        for layer in backbone.layers
    ]
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def attention_maps(attn, x: torch.Tensor, hw_shape) -> dict:
    """The attention of one DIBA layer on its input ``x`` (B, N, C).

    Returns:
        dict: ``probs`` (B, heads, N, N) full-precision softmax, ``binary``
        (the {0, alpha} matrix; ``probs`` with full-precision activations)
        and ``effective`` (B, heads, N, N): the weights DIBA gives each value
        token, ``A`` plus the self term plus ``D``'s per-neighbour weights
        averaged over each head's channels (exact without ``D``: then
        ``out = effective · V`` per head).
    """
    logits = attn.logits(x, hw_shape)
    probs = logits.softmax(dim=-1)
    binary = attn.binarize(logits)
    return dict(probs=probs, binary=binary,
                effective=effective_weights(attn, binary, hw_shape))


@torch.no_grad()
def effective_weights(attn, binary: torch.Tensor, hw_shape) -> torch.Tensor:
    """``W`` with ``out_i = Σ_j W_ij v_j`` per head (D averaged per head)."""
    b, heads, n, _ = binary.shape
    weights = binary
    if attn.diba and attn.self_term != 'off':
        eye = torch.eye(n, dtype=binary.dtype).expand(b, heads, n, n)
        weights = add_self_term(binary, binary.sum(-1, keepdim=True), eye,
                                attn.self_term)
    local = attn.local_difference
    if local is None:
        return weights
    kernel = local.kernel() * local.scale.view(-1, 1, 1, 1)
    kernel = kernel.view(heads, -1, local.theta, local.theta).mean(1)
    extra = attn.num_extra_tokens
    rows, cols = hw_shape
    pad = local.theta // 2
    d = torch.zeros(heads, n, n, dtype=weights.dtype)
    for r in range(rows):
        for c in range(cols):
            i = extra + r * cols + c
            for dr in range(-pad, pad + 1):
                for dc in range(-pad, pad + 1):
                    if 0 <= r + dr < rows and 0 <= c + dc < cols:
                        w = kernel[:, dr + pad, dc + pad]
                        d[:, i, extra + (r + dr) * cols + c + dc] += w
                        d[:, i, i] -= w
    return weights + d
