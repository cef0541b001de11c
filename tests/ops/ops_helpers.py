"""Shared helpers of the mmdidb.ops tests (plain torch, no OpenMMLab)."""
import torch


def random_values(shape, seed: int, zero_fraction: float = 0.2,
                  dtype=torch.float32, device='cpu') -> torch.Tensor:
    """Normal values with a share of exact zeros (+0 and -0).

    Args:
        shape: Tensor shape.
        seed: Seed of the torch generator.
        zero_fraction: Share of elements set to +0 or -0.
        dtype: Result dtype.
        device: Result device.

    Returns:
        A tensor whose zeros exercise the sign(0) = +1 rule.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    pick = torch.rand(shape, generator=gen)
    x = torch.where(pick < zero_fraction / 2, torch.zeros_like(x), x)
    x = torch.where((pick >= zero_fraction / 2) & (pick < zero_fraction),
                    -torch.zeros_like(x), x)
    return x.to(dtype=dtype, device=device)


def random_mask(shape, seed: int, device='cpu') -> torch.Tensor:
    """Random {0, 1} float mask with a random density.

    Args:
        shape: Tensor shape.
        seed: Seed of the torch generator.
        device: Result device.

    Returns:
        Float tensor of zeros and ones.
    """
    gen = torch.Generator().manual_seed(seed)
    density = torch.rand((), generator=gen)
    return (torch.rand(shape, generator=gen) < density).float().to(device)


def pm1(x: torch.Tensor) -> torch.Tensor:
    """The +-1 tensor of the packing convention: +1 where x >= 0 (float64)."""
    if x.dtype == torch.bool:
        return torch.where(x, 1.0, -1.0).double()
    return torch.where(x >= 0, 1.0, -1.0).double()


def exact_pm1_product(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Float reference of bmm_pm1: sign(x) @ sign(w).T, as int32."""
    return (pm1(x) @ pm1(w).transpose(-1, -2)).to(torch.int32)


def exact_mask_product(mask: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Float reference of bmm_mask_pm1: mask @ sign(v), as int32."""
    return ((mask != 0).double() @ pm1(v)).to(torch.int32)


def scribble_padding(packed: torch.Tensor, length: int,
                     seed: int) -> torch.Tensor:
    """Set random garbage in the unused bits of the last word.

    Args:
        packed: ``int32`` words, words on the last axis.
        length: Number of valid bits.
        seed: Seed of the torch generator.

    Returns:
        A copy whose padding bits are random (valid bits unchanged).
    """
    rest = length % 32
    out = packed.clone()
    if rest == 0 or out.numel() == 0:
        return out
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, 2**31, out[..., -1].shape, generator=gen,
                          dtype=torch.int64).to(out.device)
    valid = (1 << rest) - 1
    last = out[..., -1].to(torch.int64) & 0xFFFFFFFF
    last = (last & valid) | ((noise << 1) & ~valid & 0xFFFFFFFF)
    last = torch.where(last >= 2**31, last - 2**32, last)
    out[..., -1] = last.to(torch.int32)
    return out
