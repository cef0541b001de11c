"""DIBA: Differential-Information Binary Attention (METHOD.md section 3)."""
from typing import Optional, Sequence

import torch
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from ..deploy.packed_ops import mask_value_product
from .binarizers import ElasticBinarizer, RSign
from .local_difference import LocalDifference, check_theta
from .similarity import merge_heads, split_heads
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
        similarity_cfg (dict): ``HFSC`` or ``DotProductSimilarity``; the
            channel/head/binary arguments are filled in. Defaults to HFSC
            with ``alpha=0.9``.
        binary_weights (bool): 1-bit weights. Defaults to True.
        binary_acts (bool): 1-bit activations, attention included.
            Defaults to True.
        act_cfg (dict): Activation of the wrapped linears. Defaults to
            IRPReLU.
        norm_cfg (dict): Norm of the wrapped linears. Defaults to LN.
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
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if embed_dims % num_heads:
            raise ValueError(f'DIBA: embed_dims={embed_dims} is not divisible '
                             f'by num_heads={num_heads}')
        check_theta(theta)
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.scale = (embed_dims // num_heads)**-0.5
        self.diba = diba
        self.binary_acts = binary_acts
        self.deploy = False

        def linear(bias):
            return WrappedBinaryLinear(
                embed_dims, embed_dims, bias, binary_weights, binary_acts,
                norm_cfg, act_cfg, num_tokens, num_extra_tokens)

        self.q, self.k, self.v = linear(qkv_bias), linear(qkv_bias), \
            linear(qkv_bias)
        self.proj = linear(True)
        self.similarity = MODELS.build(
            similarity_cfg,
            default_args=dict(embed_dims=embed_dims, num_heads=num_heads,
                              binary_acts=binary_acts,
                              num_extra_tokens=num_extra_tokens))
        if binary_acts:
            self.attn_binarizer = ElasticBinarizer(num_heads, num_tokens)
            self.v_binarizer = RSign(embed_dims)
        else:
            self.attn_binarizer = self.v_binarizer = None
        self.local_difference = LocalDifference(
            embed_dims, theta, num_extra_tokens,
            binary_weights) if diba and theta > 1 else None
        self._register_load_state_dict_pre_hook(_split_fused_qkv, with_module=True)

    def attention(self, x: torch.Tensor,
                  hw_shape: Optional[Sequence[int]]) -> torch.Tensor:
        """The (binarized) attention matrix, (B, heads, N, N)."""
        sim = self.similarity(x, hw_shape, self.q, self.k) * self.scale
        probs = sim.softmax(dim=-1)
        if self.attn_binarizer is not None:
            return self.attn_binarizer(probs)
        return probs

    def aggregate(self, attn: torch.Tensor, v: torch.Tensor,
                  hw_shape: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Combine values: ``A V (+ (1 - A·1) ⊙ V + D(V))``.

        Args:
            attn (Tensor): (B, heads, N, N) attention.
            v (Tensor): (B, N, C) values (already binarized if configured).
            hw_shape (tuple[int, int], optional): Patch grid.

        Returns:
            Tensor: (B, N, C).
        """
        v_heads = split_heads(v, self.num_heads)
        if self.deploy:
            alpha = self.attn_binarizer.alpha.clamp(min=1e-6).view(1, -1, 1, 1)
            out = mask_value_product(attn, alpha, v_heads)
        else:
            out = attn @ v_heads
        if self.diba:
            out = out + (1 - attn.sum(dim=-1, keepdim=True)) * v_heads
        out = merge_heads(out)
        if self.local_difference is not None:
            out = out + self.local_difference(v, hw_shape)
        return out

    def forward(self, x: torch.Tensor,
                hw_shape: Optional[Sequence[int]] = None) -> torch.Tensor:
        attn = self.attention(x, hw_shape)
        v = self.v(x, hw_shape)
        if self.v_binarizer is not None:
            v = self.v_binarizer(v)
        return self.proj(self.aggregate(attn, v, hw_shape), hw_shape)

    def switch_to_deploy(self) -> None:
        """Run ``A V`` on packed bits (no-op with full-precision activations)."""
        self.deploy = self.binary_acts


def _split_fused_qkv(module, state_dict, prefix, *args, **kwargs):
    """Load mmpretrain's fused ``qkv`` Linear into separate q, k, v."""
    for param in ('weight', 'bias'):
        fused = state_dict.pop(f'{prefix}qkv.{param}', None)
        if fused is None:
            continue
        for name, part in zip('qkv', fused.chunk(3, dim=0)):
            state_dict[f'{prefix}{name}.{param}'] = part
