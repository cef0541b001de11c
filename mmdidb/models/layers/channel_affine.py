"""Per-channel affine ``x * scale + shift`` (BinaryViT's layer scale)."""
import torch
from mmengine.registry import MODELS
from torch import nn


@MODELS.register_module()
class ChannelAffine(nn.Module):
    """``y = x * scale + shift`` over the last (channel) dimension.

    BinaryViT puts one before each residual addition (an affine
    transformation, like a BatchNorm's in CNNs): ``scale`` starts small, so
    each binary branch starts close to the identity path.

    Args:
        num_channels (int): Channels.
        init_scale (float): Initial ``scale``. Defaults to 0.1.
    """

    def __init__(self, num_channels: int, init_scale: float = 0.1):
        super().__init__()
        self.scale = nn.Parameter(torch.full((num_channels, ), init_scale))
        self.shift = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift
