# Two-stage training, stage 2: W1A1 initialised from the stage-1 (W32A1)
# checkpoint, distilled from the same FP teacher (docs/method.md).
# Paper: 76.3 % top-1 (FP DeiT-Small 73.0 %, ReActNet 68.8 %).
# tools/two_stage_train.sh passes stage 1's actual last checkpoint.
_base_ = ['./deit-s_cifar100.py']
load_from = 'work_dirs/deit-s-stage1_cifar100/epoch_300.pth'
