# Two-stage training, stage 1 (docs/method.md): binary activations
# with full-precision weights (W32A1), initialised from the FP DeiT-Small and
# distilled from it, as the single-stage config. Both stages in order:
#   bash tools/two_stage_train.sh \
#       configs/didbvit/deit-s-stage1_tiny-imagenet.py \
#       configs/didbvit/deit-s-stage2_tiny-imagenet.py [GPUS]
_base_ = ['./deit-s_tiny-imagenet.py']
model = dict(backbone=dict(binary_weights=False))
