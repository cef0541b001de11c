# The paper's classification schedule (docs/method.md): AdamW, cosine
# annealing, lr 1e-3 at a total batch of 256. Warm-up, length and weight decay
# follow the binary-ViT literature (BinaryViT, BHViT): 5 linear warm-up
# epochs, 300 epochs per run (each stage of a two-stage run too, as in
# ReActNet's two-step scheme), no weight decay.
max_epochs = 300
warmup_epochs = 5
optim_wrapper = dict(
    optimizer=dict(
        type='AdamW',
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        # decay pulls the latent weights towards 0, where their signs flip
        # back and forth; binary training uses none
        weight_decay=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs,
         eta_min=0.0, by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# lr 1e-3 is the paper's for a total batch of 256 (the datasets' bases use
# 64 per process: 4 GPUs). Enabled, so that any other number of processes
# gets the linearly scaled lr. Gradient accumulation (accumulative_counts)
# is not counted by mmengine: scale lr by hand there.
auto_scale_lr = dict(base_batch_size=256, enable=True)
