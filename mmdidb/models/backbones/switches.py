"""The DIDB switches: declared once, checked and turned into layer cfgs."""
from typing import Optional

from ..layers.diba import check_self_term
from ..layers.local_difference import check_theta
from ..layers.similarity import check_alpha_param

#: Every DIDB switch and its default. Each DIDB backbone takes them as flat
#: keyword arguments (see :class:`~.base_didb.DIDBBackbone`, where they are
#: documented), so an ablation is one config key, e.g. ``diba=False``.
DIDB_SWITCHES = dict(
    diba=True, theta=3, hfsc=True, hfsc_alpha=0.9, irprelu=True,
    binary_weights=True, binary_acts=True, act_cfg=None, qkv_bias=True,
    diba_self_term='paper', d_init_scale=0.0, hfsc_alpha_param='clamp')


def build_switches(name: str, norm_cfg: dict, **switches) -> dict:
    """Check the switches and return the configs of the layers they set.

    Args:
        name (str): The backbone, for error messages.
        norm_cfg (dict): The norm of every wrapped binary linear (the
            backbone's ``norm_cfg``).
        **switches: Any of :data:`DIDB_SWITCHES`; the others keep their
            defaults.

    Returns:
        dict: ``switches`` (the values, for logs and tests), ``binary`` (the
        arguments of every wrapped binary linear: ``binary_weights``,
        ``binary_acts``, ``act_cfg``, ``norm_cfg``) and ``attn`` (the
        arguments of :class:`DIBA` and its window/reduction variants).

    Raises:
        TypeError: An argument that is not a DIDB switch.
        ValueError: A bad ``theta``, ``hfsc_alpha``, ``diba_self_term``,
            ``d_init_scale`` or ``hfsc_alpha_param``, naming the field.
    """
    unknown = [k for k in switches if k not in DIDB_SWITCHES]
    if unknown:
        raise TypeError(f'{name}: unknown argument(s) {", ".join(unknown)}; '
                        'besides its own arguments it takes the DIDB '
                        f'switches {", ".join(DIDB_SWITCHES)}')
    s = {**DIDB_SWITCHES, **switches}
    check_theta(s['theta'])
    check_self_term(s['diba_self_term'])
    d_init_scale, hfsc_alpha = s['d_init_scale'], s['hfsc_alpha']
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
    act_cfg: Optional[dict] = s['act_cfg']
    if act_cfg is None:
        act_cfg = dict(type='IRPReLU' if s['irprelu'] else 'RPReLU')
    binary = dict(binary_weights=s['binary_weights'],
                  binary_acts=s['binary_acts'], act_cfg=act_cfg,
                  norm_cfg=norm_cfg)
    if s['hfsc']:
        check_alpha_param(s['hfsc_alpha_param'], hfsc_alpha)
        similarity_cfg = dict(type='HFSC', alpha=hfsc_alpha,
                              alpha_param=s['hfsc_alpha_param'])
    else:
        similarity_cfg = dict(type='DotProductSimilarity')
    attn = dict(qkv_bias=s['qkv_bias'], diba=s['diba'], theta=s['theta'],
                similarity_cfg=similarity_cfg,
                self_term=s['diba_self_term'], d_init_scale=d_init_scale,
                **binary)
    values = {k: v for k, v in s.items() if k not in ('act_cfg', 'qkv_bias')}
    return dict(switches=values, binary=binary, attn=attn)
