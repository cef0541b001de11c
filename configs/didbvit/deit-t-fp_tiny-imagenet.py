# Full-precision DeiT-Tiny on Tiny-ImageNet, trained from scratch with DeiT's
# recipe: the teacher of the distilled DIDB-ViT-Tiny Tiny-ImageNet configs and
# their initialisation.
# Train it first:
#   python tools/train.py configs/didbvit/deit-t-fp_tiny-imagenet.py
# (load_from= an ImageNet DeiT checkpoint fine-tunes instead.)
_base_ = [
    '../_base_/models/vit-deit-tiny-fp.py',
    '../_base_/datasets/tiny-imagenet_224_deit-aug.py',
    '../_base_/schedules/deit_adamw_cosine_300e.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=200))
