"""The DIDB switches every backbone takes, checked and turned into layer cfgs."""
from typing import Optional

from ..layers.local_difference import check_theta


def build_switches(name: str,
                   diba: bool = True,
                   theta: int = 3,
                   hfsc: bool = True,
                   hfsc_alpha: float = 0.9,
                   irprelu: bool = True,
                   binary_weights: bool = True,
                   binary_acts: bool = True,
                   act_cfg: Optional[dict] = None,
                   norm_cfg: dict = dict(type='LN', eps=1e-6),
                   qkv_bias: bool = True) -> dict:
    """Check the switches and return the configs of the layers they set.

    Args:
        name (str): The backbone, for error messages.
        diba, theta, hfsc, hfsc_alpha, irprelu, binary_weights, binary_acts,
        act_cfg, norm_cfg, qkv_bias: As in :class:`DIDBViT`.

    Returns:
        dict: ``switches`` (the values, for logs and tests), ``binary`` (the
        arguments of every wrapped binary linear: ``binary_weights``,
        ``binary_acts``, ``act_cfg``, ``norm_cfg``) and ``attn`` (the
        arguments of :class:`DIBA` and its window/reduction variants).

    Raises:
        ValueError: A bad ``theta`` or ``hfsc_alpha``, naming the field.
    """
    check_theta(theta)
    if isinstance(hfsc_alpha, bool) or \
            not isinstance(hfsc_alpha, (int, float)) or \
            not 0.0 <= hfsc_alpha <= 1.0:
        raise ValueError(f'{name}: hfsc_alpha must be a number in [0, 1] '
                         '(the initial weight of the low band, paper: 0.9), '
                         f'got {hfsc_alpha!r}')
    if act_cfg is None:
        act_cfg = dict(type='IRPReLU' if irprelu else 'RPReLU')
    binary = dict(binary_weights=binary_weights, binary_acts=binary_acts,
                  act_cfg=act_cfg, norm_cfg=norm_cfg)
    similarity_cfg = dict(type='HFSC', alpha=hfsc_alpha) if hfsc \
        else dict(type='DotProductSimilarity')
    attn = dict(qkv_bias=qkv_bias, diba=diba, theta=theta,
                similarity_cfg=similarity_cfg, **binary)
    switches = dict(diba=diba, theta=theta, hfsc=hfsc, hfsc_alpha=hfsc_alpha,
                    irprelu=irprelu, binary_weights=binary_weights,
                    binary_acts=binary_acts)
    return dict(switches=switches, binary=binary, attn=attn)
