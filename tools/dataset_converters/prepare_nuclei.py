"""Cut the stardist package's real nuclei image into mmseg-layout tiles.

The ``stardist`` wheel ships one real 512x512 fluorescence image of cell
nuclei with its human-annotated instance mask (125 nuclei). This script
turns it into a tiny two-class (background / nucleus) segmentation dataset:

    data/nuclei/
    ├── images/{train,val}/r<row>_c<col>.png   8-bit grey tiles
    └── labels/{train,val}/r<row>_c<col>.png   0 = background, 255 = nucleus

All tiles come from ONE image. The right-hand ``--val-width`` columns
(default 128 px, a quarter of the image) are held out as validation tiles
that never overlap a training tile; the rest is cut into training tiles at
half-tile stride. Intensities are scaled to 8 bits between the 1st and
99.8th percentiles of the training region.

Needs only the data files of stardist (not its dependencies)::

    pip install --no-deps -r requirements/demo.txt   # stardist
    python tools/dataset_converters/prepare_nuclei.py
"""
import argparse
import importlib.util
import os
import os.path as osp
import shutil
import sys

import numpy as np
from PIL import Image

INSTALL_HINT = ('pip install --no-deps -r requirements/demo.txt  '
                '(= pip install --no-deps stardist; its dependencies are not '
                'needed, only the data files)')


def stardist_files():
    """Paths of ``img2d.tif`` and ``mask2d.tif`` inside the stardist wheel.

    The package is found without importing it: importing stardist needs
    its heavy dependencies (csbdeep, numba, ...), its data files do not.
    """
    spec = importlib.util.find_spec('stardist')
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = osp.join(list(spec.submodule_search_locations)[0], 'data',
                      'images')
    return osp.join(folder, 'img2d.tif'), osp.join(folder, 'mask2d.tif')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/nuclei',
                        help='output folder (default: data/nuclei)')
    parser.add_argument('--image', help='image file (default: stardist\'s '
                        'img2d.tif)')
    parser.add_argument('--mask', help='instance or binary mask file '
                        '(default: stardist\'s mask2d.tif)')
    parser.add_argument('--tile', type=int, default=64, help='tile side')
    parser.add_argument('--val-width', type=int, default=128,
                        help='width of the held-out right-hand strip')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace images/ and labels/ in --out')
    return parser.parse_args(argv)


def read(path):
    with Image.open(path) as img:
        return np.asarray(img)


def to_uint8(image, region):
    """Scale to 0..255 between the 1st and 99.8th percentile of ``region``."""
    low, high = np.percentile(region, (1, 99.8))
    scaled = (image.astype(np.float64) - low) / max(high - low, 1e-6)
    return (np.clip(scaled, 0, 1) * 255).round().astype(np.uint8)


def tile_origins(height, width, tile, stride):
    return [(y, x) for y in range(0, height - tile + 1, stride)
            for x in range(0, width - tile + 1, stride)]


def write_tiles(image, mask, origins, tile, out, split, x_offset=0):
    for sub in ('images', 'labels'):
        os.makedirs(osp.join(out, sub, split), exist_ok=True)
    for y, x in origins:
        name = f'r{y:03d}_c{x + x_offset:03d}.png'
        Image.fromarray(image[y:y + tile, x:x + tile]).save(
            osp.join(out, 'images', split, name))
        Image.fromarray(mask[y:y + tile, x:x + tile]).save(
            osp.join(out, 'labels', split, name))
    return len(origins)


def prepare(image, mask, out, tile=64, val_width=128):
    """Write the train/val tiles; returns a summary dict.

    Args:
        image (np.ndarray): (H, W) grey image, any integer or float type.
        mask (np.ndarray): (H, W) instance ids or binary mask, 0 = background.
        out (str): Output folder.
        tile (int): Tile side.
        val_width (int): Width of the held-out right-hand strip; a multiple
            of ``tile``.
    """
    if image.ndim != 2 or image.shape != mask.shape:
        raise ValueError(f'image {image.shape} and mask {mask.shape} must be '
                         'grey (H, W) arrays of the same size')
    height, width = image.shape
    if val_width % tile or not tile <= val_width <= width - tile or \
            height < tile:
        raise ValueError(f'--val-width={val_width} must be a multiple of '
                         f'--tile={tile} that leaves at least one tile of '
                         f'the {height}x{width} image for training')
    split_x = width - val_width
    image8 = to_uint8(image, image[:, :split_x])
    mask8 = np.where(mask > 0, 255, 0).astype(np.uint8)
    train = write_tiles(image8[:, :split_x], mask8[:, :split_x],
                        tile_origins(height, split_x, tile, tile // 2), tile,
                        out, 'train')
    val = write_tiles(image8[:, split_x:], mask8[:, split_x:],
                      tile_origins(height, val_width, tile, tile), tile, out,
                      'val', x_offset=split_x)
    train_pixels = image8[:, :split_x]
    return dict(train=train, val=val, mean=float(train_pixels.mean()),
                std=float(train_pixels.std()),
                nucleus_fraction=float((mask8 > 0).mean()))


def main(argv=None):
    args = parse_args(argv)
    image_path, mask_path = args.image, args.mask
    if image_path is None or mask_path is None:
        found = stardist_files()
        if found is None:
            print('The demo image comes from the stardist package, which is '
                  f'not installed. Install it with:\n  {INSTALL_HINT}',
                  file=sys.stderr)
            return 2
        image_path = image_path or found[0]
        mask_path = mask_path or found[1]
    for sub in ('images', 'labels'):
        folder = osp.join(args.out, sub)
        if osp.isdir(folder) and os.listdir(folder):
            if not args.overwrite:
                print(f'{folder} exists and is not empty; pass --overwrite '
                      'to replace it', file=sys.stderr)
                return 1
            shutil.rmtree(folder)
    summary = prepare(read(image_path), read(mask_path), args.out, args.tile,
                      args.val_width)
    print(f'{image_path} + {mask_path} -> {args.out}: {summary["train"]} '
          f'training and {summary["val"]} validation tiles of '
          f'{args.tile}x{args.tile}, all from this one image; nucleus '
          f'pixels {summary["nucleus_fraction"]:.1%}; grey mean '
          f'{summary["mean"]:.2f}, std {summary["std"]:.2f} (training tiles)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
