# Real-data segmentation demo on 2 CPU cores: the mini DIDB-ViT (W1A1) +
# UPerNet on nucleus / background tiles of the one annotated image stardist
# ships. First: python tools/dataset_converters/prepare_nuclei.py
_base_ = [
    '../_base_/models/upernet_didbvit-mini_nuclei.py',
    '../_base_/datasets/nuclei.py',
    '../_base_/schedules/nuclei_adamw.py',
    '../_base_/seg_runtime.py',
]
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval={{_base_.max_iters}}),
    # `tools/test.py --show-dir DIR` draws every validation tile
    visualization=dict(interval=1))
env_cfg = dict(cudnn_benchmark=False)
# overlays: the tile shows through the class colours
visualizer = dict(alpha=0.5)
