# Runtime shared by every mmdidb segmentation config (mmseg scope).
default_scope = 'mmseg'
custom_imports = dict(imports=['mmdidb'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=16000,
        max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # `tools/test.py --show-dir DIR` turns drawing on (mmseg's convention)
    visualization=dict(type='SegVisualizationHook'),
)
# Refuses, before the first iteration, crop and padding sizes that the
# backbone's patch size does not divide (they would fail at the first
# validation, possibly hours into a run).
custom_hooks = [dict(type='SegInputSizeCheckHook')]

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # mmdidb.compat maps nccl to gloo and SyncBN to BN when CUDA is absent
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=42, deterministic=False)
