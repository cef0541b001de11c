# Quick start with distillation: the quick-start DIDB-ViT mini (W1A1) as
# the paper trains it (single-stage): initialised from the full-precision
# mini ViT and distilled from it, loss 0.1·CE + 0.9·KD. Train the teacher
# first, then this:
#   python tools/train.py configs/didbvit/vit-mini-fp_fashion-mnist.py
#   python tools/train.py configs/didbvit/vit-mini-distill_fashion-mnist.py
_base_ = ['./vit-mini_fashion-mnist.py']
model = dict(type='DistilledImageClassifier')

teacher_config = 'configs/didbvit/vit-mini-fp_fashion-mnist.py'
# the teacher's last checkpoint (its config trains 3 epochs)
fp_checkpoint = 'work_dirs/vit-mini-fp_fashion-mnist/epoch_3.pth'
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
