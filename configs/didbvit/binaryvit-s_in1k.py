# DIDBBinaryViT-S (W1A1) on ImageNet-1k, single-stage: initialised from and
# distilled by the FP BinaryViT-S pyramid, loss 0.1·CE + 0.9·KD (docs/method.md).
# Paper: +0.7 points over BinaryViT. There is no public FP
# checkpoint of this pyramid: train binaryvit-s-fp_in1k.py first (its
# last checkpoint is the path below; LoadFromCheckHook says so if missing).
_base_ = [
    '../_base_/models/didbbinaryvit-small.py',
    '../_base_/datasets/imagenet_224.py',
    '../_base_/schedules/didbvit_adamw_cosine_300e.py',
    '../_base_/default_runtime.py',
]
teacher_config = 'configs/didbvit/binaryvit-s-fp_in1k.py'
fp_checkpoint = 'work_dirs/binaryvit-s-fp_in1k/epoch_300.pth'
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
