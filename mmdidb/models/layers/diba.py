"""DIBA: Differential-Information Binary Attention (docs/method.md)."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from ..deploy.packed_ops import mask_value_product
from .binarizers import ElasticBinarizer, RSign
from .local_difference import LocalDifference, check_theta
from .similarity import merge_heads, split_heads
from .token_grid import grid_to_tokens, tokens_to_grid
from .wrapped_linear import WrappedBinaryLinear


@MODELS.register_module()
class DIBA(BaseModule):
    """Binary multi-head self-attention with differential aggregation.

    ``out = A V + (1 - A·1) ⊙ V + D(V)``, where ``A`` is the binarized
    attention ``alpha * 1[P >= alpha/2]`` (so ``A·1 = alpha * k``), ``V`` the
    binarized values and ``D`` the local differential term. With full
    precision activations ``A = P`` and its rows sum to one, so the middle
    term vanishes and DIBA is ordinary attention plus ``D``. With
    ``diba=False`` only ``A V`` remains: the naive binary attention.

    Q, K, V and the output projection are :class:`WrappedBinaryLinear`
    layers. They are separate modules, but a checkpoint with mmpretrain's
    fused ``qkv`` weight is split on load, so DeiT checkpoints initialise
    this layer.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Heads.
        num_tokens (int): Tokens at the configured input size (extra tokens
            included); sets IRPReLU offsets and the initial alpha.
        num_extra_tokens (int): Leading tokens off the patch grid (class
            token). Defaults to 1.
        qkv_bias (bool): Bias on Q, K, V. Defaults to True.
        diba (bool): Differential aggregation (self term + D). Defaults to
            True; False gives the naive binary attention.
        theta (int): Odd size of D's neighbourhood; 1 turns D off.
            Defaults to 3.
        self_term (str): DIBA's self term (only with ``diba=True``).
            ``'paper'``: ``(1 - A·1) ⊙ V`` (the paper's). ``'off'``: no self
            term, so ``A V + D(V)`` (the decomposition of DIBA into its two
            parts). ``'convex'``: the differences ``A V - (A·1) ⊙ V`` divided
            by ``max(1, A·1)``, so no row gives its own value a negative
            weight; identical to ``'paper'`` while ``alpha·k <= 1``.
            Defaults to ``'paper'``.
        d_init_scale (float): Initial per-channel scale of ``D``. Defaults
            to 0.0 (D starts off and its kernel gets no gradient at step 0).
        similarity_cfg (dict): ``HFSC`` or ``DotProductSimilarity``; the
            channel/head/binary arguments are filled in. Defaults to HFSC
            with ``alpha=0.9``.
        binary_weights (bool): 1-bit weights. Defaults to True.
        binary_acts (bool): 1-bit activations, attention included.
            Defaults to True.
        act_cfg (dict): Activation of the wrapped linears. Defaults to
            IRPReLU.
        norm_cfg (dict): Norm of the wrapped linears. Defaults to LN.
        kv_num_tokens (int, optional): Tokens of the keys and values when
            they differ from the queries (spatial-reduction attention,
            :class:`SRDIBA`); sets the K/V offsets, the initial alpha and
            D's grid. Defaults to ``num_tokens``.
        token_grid (tuple[int, int], optional): The patch grid of the
            queries at the configured input size, for IRPReLU's offsets of
            Q and the output projection; None means square.
        kv_token_grid (tuple[int, int], optional): The grid of the keys and
            values, for the offsets of K and V. Defaults to ``token_grid``.
        window_size (int, optional): IRPReLU's offsets are one per window
            position (:class:`WindowDIBA`).
        init_cfg (dict, optional): Initialisation config.

    Deploy mode (:meth:`switch_to_deploy`, binary activations only): ``A V``
    runs as an AND-popcount GEMM of the packed attention mask and the packed
    ±1 values (:func:`mmdidb.ops.bmm_mask_pm1`), alpha applied after it; the
    Q·Kᵀ products and the linear layers switch on their own.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 num_tokens: int,
                 num_extra_tokens: int = 1,
                 qkv_bias: bool = True,
                 diba: bool = True,
                 theta: int = 3,
                 similarity_cfg: dict = dict(type='HFSC', alpha=0.9),
                 binary_weights: bool = True,
                 binary_acts: bool = True,
                 act_cfg: dict = dict(type='IRPReLU'),
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 kv_num_tokens: Optional[int] = None,
                 self_term: str = 'paper',
                 d_init_scale: float = 0.0,
                 token_grid: Optional[Sequence[int]] = None,
                 kv_token_grid: Optional[Sequence[int]] = None,
                 window_size: Optional[int] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        check_self_term(self_term)
        kv_num_tokens = num_tokens if kv_num_tokens is None else kv_num_tokens
        kv_token_grid = token_grid if kv_token_grid is None else kv_token_grid
        if embed_dims % num_heads:
            raise ValueError(f'DIBA: embed_dims={embed_dims} is not divisible '
                             f'by num_heads={num_heads}')
        check_theta(theta)
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.num_extra_tokens = num_extra_tokens
        self.scale = (embed_dims // num_heads)**-0.5
        self.diba = diba
        self.self_term = self_term
        self.binary_acts = binary_acts
        self.deploy = False

        def linear(bias, tokens=num_tokens, grid=token_grid):
            return WrappedBinaryLinear(
                embed_dims, embed_dims, bias, binary_weights, binary_acts,
                norm_cfg, act_cfg, tokens, num_extra_tokens, grid,
                window_size)

        self.q = linear(qkv_bias)
        self.k = linear(qkv_bias, kv_num_tokens, kv_token_grid)
        self.v = linear(qkv_bias, kv_num_tokens, kv_token_grid)
        self.proj = linear(True)
        self.similarity = MODELS.build(
            similarity_cfg,
            default_args=dict(embed_dims=embed_dims, num_heads=num_heads,
                              binary_acts=binary_acts,
                              num_extra_tokens=num_extra_tokens))
        if binary_acts:
            self.attn_binarizer = ElasticBinarizer(num_heads, kv_num_tokens)
            self.v_binarizer = RSign(embed_dims)
        else:
            self.attn_binarizer = self.v_binarizer = None
        self.local_difference = LocalDifference(
            embed_dims, theta, num_extra_tokens, binary_weights,
            init_scale=d_init_scale) if diba and theta > 1 else None
        self._register_load_state_dict_pre_hook(_split_fused_qkv, with_module=True)

    def logits(self, x: torch.Tensor, hw_shape: Optional[Sequence[int]],
               **kwargs) -> torch.Tensor:
        """Scaled similarities, (B, heads, N, M); ``kwargs`` go to it."""
        return self.similarity(x, hw_shape, self.q, self.k, scale=self.scale,
                               **kwargs)

    def binarize(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax, then the elastic binarizer (binary activations only)."""
        probs = logits.softmax(dim=-1)
        if self.attn_binarizer is not None:
            return self.attn_binarizer(probs)
        return probs

    def attention(self, x: torch.Tensor,
                  hw_shape: Optional[Sequence[int]]) -> torch.Tensor:
        """The (binarized) attention matrix, (B, heads, N, N)."""
        return self.binarize(self.logits(x, hw_shape))

    def aggregate(self, attn: torch.Tensor, v: torch.Tensor,
                  hw_shape: Optional[Sequence[int]] = None,
                  v_hw_shape: Optional[Sequence[int]] = None,
                  regions: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Combine values: ``A V (+ (1 - A·1) ⊙ V + D(V))``.

        Args:
            attn (Tensor): (B, heads, N, M) attention.
            v (Tensor): (B, M, C) values (already binarized if configured).
            hw_shape (tuple[int, int], optional): Patch grid of the queries.
            v_hw_shape (tuple[int, int], optional): Grid of the values when
                they are fewer than the queries (spatial reduction): a
                query's own value in the self term, and ``D(V)``, are then
                those of the reduced cell it falls in (nearest upsampling).
            regions (Tensor, optional): Shift-region labels for ``D``.

        Returns:
            Tensor: (B, N, C).
        """
        v_heads = split_heads(v, self.num_heads)
        if self.deploy:
            alpha = self.attn_binarizer.alpha.clamp(min=1e-6).view(1, -1, 1, 1)
            out = mask_value_product(attn, alpha, v)
        else:
            out = attn @ v_heads
        reduced = v.shape[1] != attn.shape[-2]
        if self.diba and self.self_term != 'off':
            own = _upsample_tokens(v, v_hw_shape, hw_shape,
                                   self.num_extra_tokens) \
                if reduced else v
            out = add_self_term(out, attn.sum(dim=-1, keepdim=True),
                            split_heads(own, self.num_heads), self.self_term)
        out = merge_heads(out)
        if self.local_difference is not None:
            diff = self.local_difference(v, v_hw_shape or hw_shape, regions)
            if reduced:
                diff = _upsample_tokens(diff, v_hw_shape, hw_shape,
                                        self.num_extra_tokens)
            out = out + diff
        return out

    def forward(self, x: torch.Tensor,
                hw_shape: Optional[Sequence[int]] = None) -> torch.Tensor:
        attn = self.attention(x, hw_shape)
        return self.proj(self.aggregate(attn, self.values(x, hw_shape),
                                        hw_shape), hw_shape)

    def values(self, x: torch.Tensor,
               hw_shape: Optional[Sequence[int]] = None) -> torch.Tensor:
        """The (binarized) values of ``x``, (B, M, C)."""
        v = self.v(x, hw_shape)
        if self.v_binarizer is not None:
            v = self.v_binarizer(v)
        return v

    def switch_to_deploy(self) -> None:
        """Run ``A V`` on packed bits (no-op with full-precision activations)."""
        self.deploy = self.binary_acts


SELF_TERMS = ('paper', 'off', 'convex')


def check_self_term(self_term) -> None:
    """Raise a ValueError naming ``diba_self_term`` unless it is known."""
    if self_term not in SELF_TERMS:
        raise ValueError(f'diba_self_term must be one of {SELF_TERMS} '
                         f"('paper' is the paper's (1 - A·1) ⊙ V), got "
                         f'{self_term!r}')


def add_self_term(av: torch.Tensor, row_sums: torch.Tensor, own: torch.Tensor,
              mode: str = 'paper') -> torch.Tensor:
    """Add DIBA's self term to ``A V``.

    Args:
        av (Tensor): ``A V``, (B, heads, N, d).
        row_sums (Tensor): ``A·1 = alpha·k``, (B, heads, N, 1).
        own (Tensor): Each query's own value, (B, heads, N, d).
        mode (str): ``'paper'``: ``A V + (1 - A·1) ⊙ V``. ``'convex'``:
            ``V + (A V - (A·1) ⊙ V) / max(1, A·1)``: the same while
            ``A·1 <= 1``; above, the kept tokens' weights are scaled to sum
            to one and the own value's weight is 0 instead of negative.

    Returns:
        Tensor: (B, heads, N, d).
    """
    if mode == 'paper':
        return av + (1 - row_sums) * own
    if mode == 'convex':
        return own + (av - row_sums * own) / row_sums.clamp(min=1.0)
    raise ValueError(f'add_self_term: unknown mode {mode!r}')


def _split_fused_qkv(module, state_dict, prefix, *args, **kwargs):
    """Load mmpretrain's fused ``qkv`` Linear into separate q, k, v."""
    for param in ('weight', 'bias'):
        fused = state_dict.pop(f'{prefix}qkv.{param}', None)
        if fused is None:
            continue
        for name, part in zip('qkv', fused.chunk(3, dim=0)):
            state_dict[f'{prefix}{name}.{param}'] = part


def _upsample_tokens(x: torch.Tensor, src_hw: Sequence[int],
                     dst_hw: Sequence[int], num_extra_tokens: int = 0):
    """Nearest-upsample (B, M, C) grid tokens from ``src_hw`` to ``dst_hw``."""
    extra, grid = tokens_to_grid(x, src_hw, num_extra_tokens)
    grid = F.interpolate(grid, size=tuple(dst_hw), mode='nearest')
    return grid_to_tokens(extra, grid)
