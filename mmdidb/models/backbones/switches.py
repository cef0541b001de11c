"""The DIDB switches every backbone takes, checked and turned into layer cfgs."""
from typing import Optional

from ..layers.diba import check_self_term
from ..layers.local_difference import check_theta
from ..layers.similarity import check_alpha_param


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
                   qkv_bias: bool = True,
                   diba_self_term: str = 'paper',
                   d_init_scale: float = 0.0,
                   hfsc_alpha_param: str = 'clamp') -> dict:
    """Check the switches and return the configs of the layers they set.

    Args:
        name (str): The backbone, for error messages.
        diba, theta, hfsc, hfsc_alpha, irprelu, binary_weights, binary_acts,
        act_cfg, norm_cfg, qkv_bias: As in :class:`DIDBViT`.
        diba_self_term (str): DIBA's self term, ``'paper'``, ``'off'`` or
            ``'convex'`` (:class:`~mmdidb.models.layers.DIBA`'s
            ``self_term``). Defaults to ``'paper'``.
        d_init_scale (float): Initial per-channel scale of ``D``. Defaults
            to 0.0.
        hfsc_alpha_param (str): ``'clamp'``, ``'clamp_ste'`` or
            ``'sigmoid'`` (:class:`~mmdidb.models.layers.HFSC`'s
            ``alpha_param``). Defaults to ``'clamp'``.

    Returns:
        dict: ``switches`` (the values, for logs and tests), ``binary`` (the
        arguments of every wrapped binary linear: ``binary_weights``,
        ``binary_acts``, ``act_cfg``, ``norm_cfg``) and ``attn`` (the
        arguments of :class:`DIBA` and its window/reduction variants).

    Raises:
        ValueError: A bad ``theta``, ``hfsc_alpha``, ``diba_self_term``,
            ``d_init_scale`` or ``hfsc_alpha_param``, naming the field.
    """
    check_theta(theta)
    check_self_term(diba_self_term)
    if isinstance(d_init_scale, bool) or \
            not isinstance(d_init_scale, (int, float)):
        raise ValueError(f'{name}: d_init_scale must be a number (0 starts '
                         f'D switched off), got {d_init_scale!r}')
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
    if hfsc:
        check_alpha_param(hfsc_alpha_param, hfsc_alpha)
        similarity_cfg = dict(type='HFSC', alpha=hfsc_alpha,
                              alpha_param=hfsc_alpha_param)
    else:
        similarity_cfg = dict(type='DotProductSimilarity')
    attn = dict(qkv_bias=qkv_bias, diba=diba, theta=theta,
                similarity_cfg=similarity_cfg, self_term=diba_self_term,
                d_init_scale=d_init_scale, **binary)
    switches = dict(diba=diba, theta=theta, hfsc=hfsc, hfsc_alpha=hfsc_alpha,
                    irprelu=irprelu, binary_weights=binary_weights,
                    binary_acts=binary_acts, diba_self_term=diba_self_term,
                    d_init_scale=d_init_scale,
                    hfsc_alpha_param=hfsc_alpha_param)
    return dict(switches=switches, binary=binary, attn=attn)
