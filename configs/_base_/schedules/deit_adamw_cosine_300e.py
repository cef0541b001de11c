# DeiT's schedule for the full-precision teachers (Touvron et al. 2021):
# AdamW, lr 5e-4 per 512 images, weight decay 0.05 (not on norms, biases,
# class token and position embedding), 5 warm-up epochs, cosine, 300 epochs.
max_epochs = 300
warmup_epochs = 5
optim_wrapper = dict(
    optimizer=dict(
        type='AdamW',
        lr=5e-4 * 256 / 512,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0)
        }),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs,
         eta_min=1e-5, by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# the lr above is for a total batch of 256 (64 per process on 4 GPUs)
auto_scale_lr = dict(base_batch_size=256, enable=True)
