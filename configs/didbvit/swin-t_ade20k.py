# DIDBSwin-T (W1A1) + UPerNet on ADE20K, 512x512 crops, 160k iterations, the
# paper's batch of 18 (`tools/dist_train.sh THIS 2`: 2 processes x 9
# images), AdamW lr 1e-3 with cosine annealing.
_base_ = [
    '../_base_/models/upernet_didbswin.py',
    '../_base_/datasets/ade20k.py',
    '../_base_/schedules/seg_160k_adamw.py',
    '../_base_/seg_runtime.py',
]
