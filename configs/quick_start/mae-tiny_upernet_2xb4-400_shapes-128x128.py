# The quick start (`bash tools/quick_start.sh`): the ViT-B ADE20K recipe shrunk to run on a
# CPU in minutes. A 4-layer, 128-dim MAEViT + UPerNet on the ADE20K-format shapes data set
# that the quick start writes; fp32 (no GPU for AmpOptimWrapper); 2 processes x 4 images.
_base_ = ['../mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py']

work_root = 'work_dirs/quick_start'
data_root = f'{work_root}/data/ADEChallengeData2016'
metainfo = dict(classes=('wall', 'building', 'sky', 'floor', 'tree'))
num_classes = 5
crop_size = (128, 128)
test_scale = (512, 128)
max_iters = 400

model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=f'{work_root}/pretrain/mae_tiny_mmseg.pth',
    backbone=dict(
        img_size=crop_size,
        embed_dims=128,
        num_layers=4,
        num_heads=2,
        out_indices=[0, 1, 2, 3],
        drop_path_rate=0.1,
    ),
    neck=dict(embed_dim=128),
    decode_head=dict(in_channels=[128, 128, 128, 128], channels=64, num_classes=num_classes),
    auxiliary_head=dict(in_channels=128, channels=32, num_classes=num_classes),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(85, 85)),
)

optim_wrapper = dict(
    _delete_=True,
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
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(
                    type='MinSizeResize',
                    scale=(int(test_scale[0] * r), int(test_scale[1] * r)),
                    min_size=crop_size[0],
                )
                for r in img_ratios
            ],
            [
                dict(type='RandomFlip', prob=0.0, direction='horizontal'),
                dict(type='RandomFlip', prob=1.0, direction='horizontal'),
            ],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ],
    ),
]
shapes = dict(type='ADE20KDataset', data_root=data_root, metainfo=metainfo)
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(**shapes, pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(**shapes, pipeline=test_pipeline),
)
test_dataloader = val_dataloader

train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 5)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1),
)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
