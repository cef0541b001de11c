# The paper's segmentation regime: AdamW, initial lr 1e-3, cosine annealing,
# here over 160k iterations (after a 1.5k-iteration linear warm-up, as
# mmseg's ViT configs use). mmseg's own DeiT-S "160k" UPerNet config inherits
# an 80k schedule; this one really runs 160k, and the cosine ends at 160k.
max_iters = 160000
warmup_iters = 1500
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01),
    # weight decay only on weight matrices and kernels: not on the
    # position embedding, class token, token offsets, norms, biases, nor
    # on the binarizers' and activations' scales and shifts (1-D or 0-D)
    paramwise_cfg=dict(
        flat_decay_mult=0.,
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.),
            'token_offset': dict(decay_mult=0.),
            '.alpha': dict(decay_mult=0.),
        }),
    # clipping guards the binary model's first steps
    clip_grad=dict(max_norm=5.0))
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
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=16000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# the paper's batch: 2 processes x 9 images
auto_scale_lr = dict(enable=False, base_batch_size=18)
