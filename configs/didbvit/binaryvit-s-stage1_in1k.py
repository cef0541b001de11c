# Two-stage training, stage 1: W32A1 DIDBBinaryViT-S. Both stages in order:
#   bash tools/two_stage_train.sh configs/didbvit/binaryvit-s-stage1_in1k.py \
#       configs/didbvit/binaryvit-s-stage2_in1k.py [GPUS]
_base_ = ['./binaryvit-s_in1k.py']
model = dict(backbone=dict(binary_weights=False))
