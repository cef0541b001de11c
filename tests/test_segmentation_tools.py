"""Segmentation configs through the command-line tools (subprocesses)."""
import glob
import os
import re
import subprocess
import sys

import mmseg
import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from helpers import REPO_ROOT, load_tool
from tiny.segmentation import make_ade20k, make_binary_seg, shrink_options

prepare_nuclei = load_tool('tools/dataset_converters/prepare_nuclei.py')

ADE = 'configs/didbvit/deit-s_ade20k.py'
RSLVF = 'configs/didbvit/deit-s_rslvf.py'
MMSEG_TOOLS = os.path.join(os.path.dirname(mmseg.__file__), '.mim', 'tools')


def run(cmd, env=None):
    """Run a command from the repository root; its output, or a failure."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
    result = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def metric(name, text):
    """The last value logged for metric ``name``."""
    found = re.findall(rf'{re.escape(name)}: ([0-9.]+)', text)
    assert found, f'{name} not in the output:\n{text[-3000:]}'
    return float(found[-1])


def tiny_options(config, data_root, iters=1):
    """--cfg-options for one short run on tiny data with 64x64 crops."""
    opts = shrink_options(Config.fromfile(os.path.join(REPO_ROOT, config)))
    for loader in ('train', 'val', 'test'):
        opts += [f'{loader}_dataloader.dataset.data_root={data_root}',
                 f'{loader}_dataloader.num_workers=0',
                 f'{loader}_dataloader.persistent_workers=False']
    opts += [f'train_cfg.max_iters={iters}', 'train_cfg.val_interval=1',
             'default_hooks.checkpoint.interval=1',
             'default_hooks.logger.interval=1']
    return ['--cfg-options'] + opts


def test_ade20k_dist_train_resume_and_dist_test_on_cpu(tmp_path):
    root = make_ade20k(str(tmp_path / 'data'))
    work = tmp_path / 'work'
    train = ['bash', 'tools/dist_train.sh', ADE, '2', '--work-dir', str(work)]
    out = run(train + tiny_options(ADE, root, iters=1))
    assert 'Distributed training: True' in out and 'GPU number: 2' in out
    # SyncBN in the heads is turned into BN for CPU DDP by mmdidb.compat
    assert 'plain BN instead of SyncBN' in out
    assert (work / 'iter_1.pth').is_file()
    out = run(train + ['--resume'] + tiny_options(ADE, root, iters=2))
    assert 'resumed epoch: 0, iter: 1' in out
    assert 'Iter(train) [2/2]' in out and 'Iter(train) [1/2]' not in out
    assert (work / 'iter_2.pth').is_file()
    out = run(['bash', 'tools/dist_test.sh', ADE, str(work / 'iter_2.pth'),
               '2', '--work-dir', str(tmp_path / 'test')] +
              tiny_options(ADE, root))
    tested = re.search(r'Test metrics .*aAcc: ([0-9.]+), mIoU: ([0-9.]+)',
                       out)
    assert tested, out[-3000:]
    assert 0 <= float(tested.group(2)) <= float(tested.group(1)) <= 100


def test_rslvf_road_metrics_stock_mmseg_test_and_show_dir(tmp_path):
    root = make_binary_seg(str(tmp_path / 'rs-lvf'), foreground=255,
                           splits=(('train', 4), ('val', 2), ('test', 1)))
    work = tmp_path / 'work'
    out = run([sys.executable, 'tools/train.py', RSLVF, '--work-dir',
               str(work)] + tiny_options(RSLVF, root))
    # the per-class table and the road class's own scores
    assert re.search(r'\|\s+road\s+\|', out)
    trained = {k: metric(k, out) for k in
               ('IoU.road', 'Fscore.road', 'Precision.road', 'Recall.road')}
    assert re.search(r'Final validation metrics .*mIoU: .*IoU\.road', out)
    checkpoint = str(work / 'iter_1.pth')
    # testing on the validation tiles gives the numbers of the validation
    val_as_test = tiny_options(RSLVF, root) + [
        'test_dataloader.dataset.data_prefix.img_path=images/val',
        'test_dataloader.dataset.data_prefix.seg_map_path=labels/val'
    ]
    # mmseg's own test.py: our config is mmseg's format plus custom_imports
    out = run([sys.executable, os.path.join(MMSEG_TOOLS, 'test.py'), RSLVF,
               checkpoint, '--work-dir', str(tmp_path / 'stock')] +
              val_as_test)
    assert {k: metric(k, out) for k in trained} == trained
    # ours, drawing the overlays as mmseg's --show-dir does
    show = tmp_path / 'show'
    out = run([sys.executable, 'tools/test.py', RSLVF, checkpoint,
               '--work-dir', str(tmp_path / 'ours'), '--show-dir', str(show),
               '--show-interval', '1'] + val_as_test)
    assert re.search(r'Test metrics .*IoU\.road: ', out)
    assert {k: metric(k, out) for k in trained} == trained
    drawn = sorted(glob.glob(str(show / '**' / '*.png'), recursive=True))
    assert [os.path.basename(p) for p in drawn] == [
        'test_tile0.png_0.png', 'test_tile1.png_0.png'
    ]
    with Image.open(drawn[0]) as img:
        # image | ground truth | prediction, side by side (width 2 x 80)
        assert img.size == (160, 64)


def test_prepare_nuclei_tiles_in_mmseg_layout(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(100, 3000, (256, 256)).astype(np.uint16)
    mask = np.zeros((256, 256), np.uint16)
    mask[10:40, 20:50] = 1
    mask[200:230, 210:250] = 7  # an instance id in the held-out strip
    image[mask > 0] += 20000
    Image.fromarray(image).save(tmp_path / 'img.tif')
    Image.fromarray(mask).save(tmp_path / 'mask.tif')
    out = tmp_path / 'nuclei'
    args = ['--image', str(tmp_path / 'img.tif'), '--mask',
            str(tmp_path / 'mask.tif'), '--out', str(out), '--val-width', '64']
    assert prepare_nuclei.main(args) == 0
    train = sorted(os.listdir(out / 'images' / 'train'))
    val = sorted(os.listdir(out / 'images' / 'val'))
    # 64x64 tiles: training at stride 32 over 256x192, validation 4x1
    assert len(train) == 7 * 5 and len(val) == 4
    assert sorted(os.listdir(out / 'labels' / 'val')) == val
    assert val[-1] == 'r192_c192.png'
    label = np.asarray(Image.open(out / 'labels' / 'val' / 'r192_c192.png'))
    np.testing.assert_array_equal(label,
                                  np.where(mask[192:, 192:] > 0, 255, 0))
    tile = np.asarray(Image.open(out / 'images' / 'train' / 'r000_c000.png'))
    assert tile.dtype == np.uint8 and tile.shape == (64, 64)
    assert tile[10:40, 20:50].min() > 200 and tile[:8].max() < 40
    # an existing output is not overwritten by accident
    assert prepare_nuclei.main(args) == 1
    assert prepare_nuclei.main(args + ['--overwrite']) == 0


def test_prepare_nuclei_says_how_to_install_stardist(monkeypatch, capsys):
    monkeypatch.setattr(prepare_nuclei, 'stardist_files', lambda: None)
    assert prepare_nuclei.main(['--out', 'unused']) == 2
    assert 'pip install --no-deps' in capsys.readouterr().err


@pytest.mark.parametrize('kwargs', [dict(val_width=100), dict(tile=300)])
def test_prepare_nuclei_refuses_bad_splits(tmp_path, kwargs):
    with pytest.raises(ValueError, match='--val-width'):
        prepare_nuclei.prepare(np.zeros((256, 256)), np.zeros((256, 256)),
                               str(tmp_path), **kwargs)
