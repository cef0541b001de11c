# Two-stage training, stage 2: W1A1 DIDBSwin-T initialised from stage 1,
# distilled from the same FP teacher. tools/two_stage_train.sh passes
# stage 1's actual last checkpoint.
_base_ = ['./didbswin-tiny_in1k.py']
load_from = 'work_dirs/didbswin-tiny-stage1_in1k/epoch_300.pth'
