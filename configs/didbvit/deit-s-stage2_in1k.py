# Two-stage training, stage 2: W1A1 initialised from the stage-1 (W32A1)
# checkpoint, distilled from the same FP teacher (docs/method.md).
# tools/two_stage_train.sh passes stage 1's actual last checkpoint.
_base_ = ['./deit-s_in1k.py']
load_from = 'work_dirs/deit-s-stage1_in1k/epoch_300.pth'
