from .binarizers import (
                         ElasticBinarizer,
                         RSign,
                         WeightBinarizer,
                         approx_sign,
                         binarize_weight,
                         sign,
)
from .binary_linear import BinaryLinear
from .channel_affine import ChannelAffine
from .diba import DIBA
from .encoder_layer import DIDBTransformerEncoderLayer
from .ffn import BinaryFFN
from .haar import StationaryHaarSplit, haar_split_grid
from .irprelu import IRPReLU
from .local_difference import LocalDifference
from .patch_merging import BinaryPatchMerging
from .pooling_branches import PoolingBranches
from .pyramid_block import DIDBPyramidBlock
from .similarity import HFSC, DotProductSimilarity
from .sr_diba import SRDIBA
from .swin_block import DIDBSwinBlock
from .window_diba import ShiftWindowDIBA, WindowDIBA
from .wrapped_linear import WrappedBinaryLinear

__all__ = [
    'sign', 'approx_sign', 'binarize_weight', 'WeightBinarizer', 'RSign',
    'ElasticBinarizer', 'BinaryLinear', 'WrappedBinaryLinear', 'IRPReLU',
    'StationaryHaarSplit', 'haar_split_grid', 'HFSC', 'DotProductSimilarity',
    'LocalDifference', 'DIBA', 'BinaryFFN', 'DIDBTransformerEncoderLayer',
    'BinaryPatchMerging', 'WindowDIBA', 'ShiftWindowDIBA', 'DIDBSwinBlock',
    'SRDIBA', 'ChannelAffine', 'PoolingBranches', 'DIDBPyramidBlock'
]
