# Two-stage training, stage 2: W1A1 DIDBSwin-T initialised from stage 1,
# distilled from the same FP teacher. tools/two_stage_train.sh passes
# stage 1's actual last checkpoint.
_base_ = ['./swin-t_in1k.py']
load_from = 'work_dirs/swin-t-stage1_in1k/epoch_300.pth'
