# DIDBSwin Swin-Tiny (W1A1) on ImageNet-1k, single-stage: initialised from
# the full-precision Swin-Tiny and distilled from it, loss 0.1·CE + 0.9·KD
# (docs/method.md). Paper: +6.0 points over the best binary Swin-T.
_base_ = [
    '../_base_/models/didbswin-tiny.py',
    '../_base_/datasets/imagenet_224.py',
    '../_base_/schedules/didbvit_adamw_cosine_300e.py',
    '../_base_/default_runtime.py',
]
teacher_config = 'configs/didbvit/swin-t-fp_in1k.py'
# mmpretrain's FP Swin-Tiny (81.2 % top-1, model zoo; downloaded on first
# use): the teacher and the initialisation. A local copy: --cfg-options
# load_from=PATH teacher_checkpoint=PATH
fp_checkpoint = ('https://download.openmmlab.com/mmclassification/v0/'
                 'swin-transformer/'
                 'swin_tiny_224_b16x64_300e_imagenet_20210616_090925-66df6be6.pth')
# FP weights (qkv split, FFN keys renamed on load); the binarizers', norms',
# activations' and D(V)'s own parameters are reported missing
load_from = fp_checkpoint
# the DistillationHook below reads it
teacher_checkpoint = fp_checkpoint
custom_hooks = [
    dict(type='ReseedHook'),
    dict(type='LoadFromCheckHook'),
    # (1 - 0.9)·CE + 0.9·KD from the frozen FP teacher
    dict(
        type='DistillationHook',
        teacher=teacher_config,
        loss_weight=0.9,
        tau=1.0),
]
