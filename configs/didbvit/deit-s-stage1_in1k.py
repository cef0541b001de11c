# Two-stage training, stage 1 (docs/method.md): binary activations
# with full-precision weights (W32A1), initialised from the FP DeiT-Small and
# distilled from it, as the single-stage config. Both stages in order:
#   bash tools/two_stage_train.sh configs/didbvit/deit-s-stage1_in1k.py \
#       configs/didbvit/deit-s-stage2_in1k.py [GPUS]
_base_ = ['./deit-s_in1k.py']
model = dict(backbone=dict(binary_weights=False))
