from .didb_swin import DIDBSwin
from .didb_vit import DIDBViT

__all__ = ['DIDBViT', 'DIDBSwin']
