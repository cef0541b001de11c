from .didb_binary_vit import DIDBBinaryViT
from .didb_swin import DIDBSwin
from .didb_vit import DIDBViT

__all__ = ['DIDBViT', 'DIDBSwin', 'DIDBBinaryViT']
