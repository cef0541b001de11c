# Two-stage training, stage 1: W32A1 DIDBBinaryViT-S. Both stages in order:
#   bash tools/two_stage_train.sh configs/didbvit/didbbinaryvit-small-stage1_in1k.py \
#       configs/didbvit/didbbinaryvit-small-stage2_in1k.py [GPUS]
_base_ = ['./didbbinaryvit-small_in1k.py']
model = dict(backbone=dict(binary_weights=False))
