"""Grey images for the models trained on grey data."""
import mmcv
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS


@TRANSFORMS.register_module()
class ToGrayscale(BaseTransform):
    """Turn a colour image into a grey (H, W) one; a grey image passes.

    mmpretrain's ``ImageClassificationInferencer`` (and ``inference_model``)
    reads an image path as a 3-channel BGR image, whatever the file holds,
    and replaces the config's ``LoadImageFromFile``. Placed in the test
    pipeline of a model with ``in_channels=1``, this transform gives such a
    model the grey image it was trained on: a grey PNG comes back exactly
    (its three channels are equal), a colour one by OpenCV's luma weights.
    Images that are already grey (an (H, W) or (H, W, 1) array, the
    datasets' own samples) are left untouched, so evaluation is unchanged.

    Required keys: ``img``. Modified keys: ``img``.
    """

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim == 3 and img.shape[2] in (3, 4):
            # BGR(A), OpenCV's and mmcv's channel order; alpha is dropped
            results['img'] = mmcv.bgr2gray(img[..., :3])
        return results
