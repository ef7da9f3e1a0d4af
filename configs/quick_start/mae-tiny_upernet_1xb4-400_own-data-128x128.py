# The own-data config (configs/mae/mae-base_upernet_8xb2-amp-160k_own-data-512x512.py) with the
# quick start's tiny model and 128x128 crops: a first run on your folder data set in minutes
# on a CPU, before the ViT-B run (docs/own_data.md). The data set, its classes and
# num_classes all come from configs/_base_/datasets/own_data.py as in the full config.
_base_ = ['../mae/mae-base_upernet_8xb2-amp-160k_own-data-512x512.py']

crop_size = (128, 128)
test_scale = (512, 128)
max_iters = 400
model = dict(
    data_preprocessor=dict(size=crop_size),
    # Written by the quick start (tools/quick_start.sh, step 2) or by
    # tools/quick_start.py checkpoint + tools/model_converters/mae2mmseg.py.
    pretrained='work_dirs/quick_start/pretrain/mae_tiny_mmseg.pth',
    backbone=dict(
        img_size=crop_size, embed_dims=128, num_layers=4, num_heads=2, out_indices=[0, 1, 2, 3]
    ),
    neck=dict(embed_dim=128),
    decode_head=dict(in_channels=[128, 128, 128, 128], channels=64),
    auxiliary_head=dict(in_channels=128, channels=32),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(85, 85)),
)
optim_wrapper = dict(
    _delete_=True,  # fp32: no GPU for AmpOptimWrapper
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='MAELayerDecayOptimizerConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.65),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=40),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=40, end=max_iters),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=test_scale, ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=test_scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False, dataset=dict(pipeline=train_pipeline)
)
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 4)
default_hooks = dict(
    logger=dict(interval=20), checkpoint=dict(interval=max_iters, max_keep_ckpts=1)
)
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
