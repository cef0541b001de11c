"""Binary linear layer: binarized input activations times binarized weights."""
import torch
import torch.nn.functional as F
from torch import nn

from mmdidb.ops.training import signed_linear

from ..deploy.packed_ops import (
    binary_linear,
    binary_linear_fused,
    pack_binary_weight,
)
from .binarizers import RSign, binarize_weight


class BinaryLinear(nn.Linear):
    """``nn.Linear`` with 1-bit weights and/or 1-bit input activations.

    Keeps ``weight`` and ``bias`` under the names ``nn.Linear`` uses, so a
    full-precision checkpoint loads into it unchanged. The bias stays full
    precision and is added after the (simulated) integer product.

    Args:
        in_features (int): Input channels.
        out_features (int): Output channels.
        bias (bool): Whether to learn a bias. Defaults to True.
        binary_weights (bool): Binarize the weight (one scale
            per output channel). Defaults to True.
        binary_acts (bool): Binarize the input with :class:`RSign`.
            Defaults to True.

    Deploy mode (:meth:`switch_to_deploy`, W1A1 layers only): the float
    ``weight`` is replaced by the buffers ``weight_packed`` (its signs, 1 bit
    per weight in ``int32`` words) and ``weight_scale`` (one per output
    channel), and the product runs as an XNOR-popcount GEMM
    (:func:`mmdidb.ops.bmm_pm1`). With ``fused_deploy`` (the default;
    ``switch_to_deploy(model, fused=False)`` clears it) the input
    binarizer's shift, the packing, the GEMM, the scale and the bias run as
    two fused kernels
    (:func:`~mmdidb.models.deploy.packed_ops.binary_linear_fused`), with
    the same result bit for bit; the RSign module is then not called.
    """

    def __init__(self,
                 in_features: int,
                 out_features: int,
                 bias: bool = True,
                 binary_weights: bool = True,
                 binary_acts: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        self.binary_weights = binary_weights
        self.binary_acts = binary_acts
        self.input_binarizer = RSign(in_features) if binary_acts else None
        self.deploy = False
        self.fused_deploy = True

    def binary_weight(self) -> torch.Tensor:
        """The weight used in the forward pass (binarized if configured)."""
        if self.binary_weights:
            return binarize_weight(self.weight)
        return self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deploy and self.fused_deploy:
            return binary_linear_fused(x, self.input_binarizer.beta,
                                       self.weight_packed, self.weight_scale,
                                       self.bias, self.in_features)
        if self.deploy:
            return binary_linear(self.input_binarizer(x), self.weight_packed,
                                 self.weight_scale, self.bias,
                                 self.in_features)
        if self.input_binarizer is not None:
            # RSign and the product as one autograd node (same numbers, less
            # memory); the module still runs, so its hooks see the signs
            with torch.no_grad():
                signs = self.input_binarizer(x)
            return signed_linear(x, self.input_binarizer.beta, signs,
                                 self.binary_weight(), self.bias)
        return F.linear(x, self.binary_weight(), self.bias)

    def switch_to_deploy(self) -> None:
        """Pack the binary weight once and drop the float one (W1A1 only).

        Layers with a full-precision weight or input have no binary product
        to pack and are left as they are.
        """
        if self.deploy or not (self.binary_weights and self.binary_acts):
            return
        packed, scale = pack_binary_weight(self.weight)
        del self.weight
        self.register_buffer('weight_packed', packed)
        self.register_buffer('weight_scale', scale)
        self.deploy = True

    def extra_repr(self) -> str:
        return (f'{super().extra_repr()}, binary_weights={self.binary_weights}'
                f', binary_acts={self.binary_acts}'
                + (', deploy=True' if self.deploy else ''))
