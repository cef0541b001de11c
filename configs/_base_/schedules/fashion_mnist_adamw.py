# A few epochs of AdamW + cosine: the quick-start budget on 2 CPU cores.
max_epochs = 4
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=3e-3, weight_decay=0.0),
    clip_grad=dict(max_norm=5.0),
    # Learning-rate multiplier of the attention binarizers' alpha (one per
    # head, starting at 2/N): Adam moves a parameter by about the lr per
    # step, a large step relative to 2/N. The key has no dot, so
    # --cfg-options optim_wrapper.paramwise_cfg.custom_keys.attn_binarizer.lr_mult=0.1
    # changes it. 1.0 = no change (docs/method.md: choice 21).
    paramwise_cfg=dict(custom_keys=dict(attn_binarizer=dict(lr_mult=1.0))))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True,
         begin=0, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=256)
