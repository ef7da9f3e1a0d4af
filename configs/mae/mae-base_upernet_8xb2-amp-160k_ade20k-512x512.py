# MAE ViT-B/16 + UPerNet on ADE20K at 512x512: mmseg's recipe (48.13 mIoU single-scale,
# 48.70 multi-scale + flip, V100) with real mixed precision and the min-size multi-scale test.
_base_ = [
    '../_base_/mae_seg.py',  # first: lets the mmseg:: bases resolve without pkg_resources
    'mmseg::_base_/models/upernet_mae.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
# mmseg's EncoderDecoder with the sliding windows run 8 at a time (same logits, see
# BatchedSlideEncoderDecoder); test-time augmentation batches all its views' windows.
model = dict(
    type='BatchedSlideEncoderDecoder',
    data_preprocessor=data_preprocessor,
    # Output of: python tools/model_converters/mae2mmseg.py mae_pretrain_vit_base.pth <this>
    pretrained='pretrain/mae_pretrain_vit_base_mmseg.pth',
    backbone=dict(
        type='MAEViT',
        img_size=crop_size,
        patch_size=16,
        embed_dims=768,
        num_layers=12,
        num_heads=12,
        mlp_ratio=4,
        init_values=1.0,
        drop_path_rate=0.1,
        out_indices=[3, 5, 7, 11],
    ),
    neck=dict(embed_dim=768, rescales=[4, 2, 1, 0.5]),
    decode_head=dict(in_channels=[768, 768, 768, 768], channels=768, num_classes=150),
    auxiliary_head=dict(in_channels=768, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341), window_batch_size=8),
)
tta_model = dict(type='BatchedSlideSegTTAModel')

# mmseg's config says `fp16 = dict(loss_scale='dynamic')`, a 0.x key mmengine ignores;
# AmpOptimWrapper is what actually trains in mixed precision.
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='MAELayerDecayOptimizerConstructor',
    paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.65),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=1500, end=160000),
]

# Resuming (--resume) costs no reloading of trained batches and ends with the weights of an
# uninterrupted run, drop path included; checkpoints are written whole or not at all; a NaN/inf
# loss stops the run with one line before a spoiled checkpoint is written (mae_seg.engine).
train_cfg = dict(type='ExactResumeIterBasedTrainLoop')
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
custom_hooks = [dict(type='NonFiniteLossHook')]

# 8 GPUs x 2 images.
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader

# Multi-scale + flip test (`tools/test.py --tta`, or the -ms config): ratios of the
# (2048, 512) test scale, each short side kept >= 512 so every sliding window is a full crop.
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(
                    type='MinSizeResize',
                    scale=(int(2048 * r), int(512 * r)),
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
