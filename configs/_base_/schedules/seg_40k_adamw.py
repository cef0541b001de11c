# The paper's regime (AdamW, initial lr 1e-3, cosine annealing) over 40k
# iterations for the road datasets (the paper does not give their length).
_base_ = ['./seg_160k_adamw.py']
max_iters = 40000
warmup_iters = 1500
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
        end=warmup_iters),
    dict(
        type='CosineAnnealingLR',
        T_max=max_iters - warmup_iters,
        eta_min=0.0,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters),
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=4000)
# the paper's road batch: 4
auto_scale_lr = dict(enable=False, base_batch_size=4)
