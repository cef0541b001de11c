# Two-stage training, stage 1: W32A1 DIDBSwin-T, initialised from and
# distilled by the FP Swin-T. Both stages in order:
#   bash tools/two_stage_train.sh configs/didbvit/swin-t-stage1_in1k.py \
#       configs/didbvit/swin-t-stage2_in1k.py [GPUS]
_base_ = ['./swin-t_in1k.py']
model = dict(backbone=dict(binary_weights=False))
