from .didb_vit import DIDBViT

__all__ = ['DIDBViT']
