# Full-precision BinaryViT-Small pyramid: DIDBBinaryViT with 32-bit weights
# and activations, the DIDB modules off and GELU activations. BinaryViT has
# no mmpretrain counterpart or public FP checkpoint, so this model is the
# teacher (and initialisation) of the distilled DIDBBinaryViT configs and
# has to be trained first (binaryvit-s-fp_in1k.py).
_base_ = ['./didbbinaryvit-small.py']
model = dict(
    type='ImageClassifier',
    backbone=dict(
        diba=False,
        hfsc=False,
        irprelu=False,
        binary_weights=False,
        binary_acts=False,
        act_cfg=dict(type='GELU'),
        drop_path_rate=0.1),
    head=dict(
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0),
    ]),
)
