# DIDBBinaryViT on 28x28 grey images: didbbinaryvit-small.py's model (same
# switches, pooling branches and layer scales) with the mini arch: 4x4
# patches (a 7x7 grid), 2 stages of 32/64 channels, keys/values pooled 2x2
# in the first; the backbone averages the last stage's tokens. No
# distillation.
_base_ = ['./didbbinaryvit-small.py']
model = dict(
    type='ImageClassifier',
    backbone=dict(
        arch='mini',
        img_size=28,
        patch_size=4,
        in_channels=1,
        out_indices=(1, )),
    head=dict(num_classes=10, in_channels=64),
)
