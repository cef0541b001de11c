from .distilled_image_classifier import DistilledImageClassifier, soft_cross_entropy

__all__ = ['DistilledImageClassifier', 'soft_cross_entropy']
