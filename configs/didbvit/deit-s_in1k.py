# DIDB-ViT DeiT-Small (W1A1) on ImageNet-1k, single-stage (the paper's
# default): initialised from the full-precision DeiT-Small and distilled from
# it, loss 0.1·CE + 0.9·KD (docs/method.md).
# Paper: +5.0 points over SI-BiViT (DeiT-Small); the ablations (without DIBA
# -5.2, without HFSC -4.2, without IRPReLU -1.8) are on this setting.
_base_ = [
    '../_base_/models/didbvit-deit-small.py',
    '../_base_/datasets/imagenet_224.py',
    '../_base_/schedules/didbvit_adamw_cosine_300e.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=1000))

teacher_config = 'configs/didbvit/deit-s-fp_in1k.py'
# mmpretrain's FP DeiT-Small (model zoo, downloaded on first use): the
# teacher and the initialisation. A local copy: --cfg-options
# load_from=PATH teacher_checkpoint=PATH
fp_checkpoint = 'https://download.openmmlab.com/mmclassification/v0/deit/deit-small_pt-4xb256_in1k_20220218-9425b9bb.pth'
# FP weights; the binarizers', norms' and activations' own parameters are
# reported missing and keep their initialisation
load_from = fp_checkpoint
# the DistillationHook below reads it
teacher_checkpoint = fp_checkpoint
custom_hooks = [
    dict(type='ReseedHook'),
    # a missing load_from fails before training, saying what writes it
    dict(type='LoadFromCheckHook'),
    # (1 - 0.9)·CE + 0.9·KD from the frozen FP teacher
    dict(
        type='DistillationHook',
        teacher=teacher_config,
        loss_weight=0.9,
        tau=1.0),
]
