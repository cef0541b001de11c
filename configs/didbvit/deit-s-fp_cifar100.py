# Full-precision DeiT-Small on CIFAR-100, trained from scratch with DeiT's
# recipe: the teacher of the distilled DIDB-ViT-Small CIFAR-100 configs and
# their initialisation (paper: FP DeiT-Small 73.0 % top-1).
# Train it first: python tools/train.py configs/didbvit/deit-s-fp_cifar100.py
# (load_from= an ImageNet DeiT checkpoint fine-tunes instead.)
_base_ = [
    '../_base_/models/vit-deit-small-fp.py',
    '../_base_/datasets/cifar100_224_deit-aug.py',
    '../_base_/schedules/deit_adamw_cosine_300e.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=100))
