# Two-stage training, stage 2: W1A1 DIDBBinaryViT-S initialised from stage 1,
# distilled from the same FP teacher.
_base_ = ['./binaryvit-s_in1k.py']
load_from = 'work_dirs/binaryvit-s-stage1_in1k/epoch_300.pth'
