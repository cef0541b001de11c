# Two-stage training, stage 1 (docs/method.md): binary activations
# with full-precision weights (W32A1), initialised from the FP DeiT-Tiny and
# distilled from it, as the single-stage config. Both stages in order:
#   bash tools/two_stage_train.sh configs/didbvit/deit-t-stage1_in1k.py \
#       configs/didbvit/deit-t-stage2_in1k.py [GPUS]
_base_ = ['./deit-t_in1k.py']
model = dict(backbone=dict(binary_weights=False))
