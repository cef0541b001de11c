# Two-stage training, stage 2: W1A1 initialised from the stage-1 (W32A1)
# checkpoint, distilled from the same FP teacher (docs/method.md).
# Paper: +19.3 points over BFD.
# tools/two_stage_train.sh passes stage 1's actual last checkpoint.
_base_ = ['./deit-s_tiny-imagenet.py']
load_from = 'work_dirs/deit-s-stage1_tiny-imagenet/epoch_300.pth'
