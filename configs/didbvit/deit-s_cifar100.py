# DIDB-ViT DeiT-Small (W1A1) on CIFAR-100, single-stage (the paper's
# default): initialised from the full-precision DeiT-Small and distilled from
# it, loss 0.1·CE + 0.9·KD (docs/method.md).
# Paper: +5.9 points over BiT.
_base_ = [
    '../_base_/models/didbvit-deit-small.py',
    '../_base_/datasets/cifar100_224.py',
    '../_base_/schedules/didbvit_adamw_cosine_300e.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=100))

teacher_config = 'configs/didbvit/deit-s-fp_cifar100.py'
# the last checkpoint of the FP DeiT-Small config (300 epochs): the teacher
# and the initialisation
fp_checkpoint = 'work_dirs/deit-s-fp_cifar100/epoch_300.pth'
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
