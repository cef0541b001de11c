# DIDBSwin on 28x28 grey images: didbswin-tiny.py's model (same switches)
# with the mini arch: 4x4 patches (a 7x7 grid), windows of 4 (padded to
# 8x8, shifted in every second block), 2 stages of 32/64 channels; global
# average pooling of the last stage feeds the head. No distillation.
_base_ = ['./didbswin-tiny.py']
model = dict(
    type='ImageClassifier',
    backbone=dict(
        arch='mini',
        img_size=28,
        patch_size=4,
        in_channels=1,
        window_size=4,
        out_indices=(1, )),
    head=dict(num_classes=10, in_channels=64),
)
