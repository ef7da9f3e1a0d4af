# MAE ViT-B/16 + UPerNet, mmseg's 160k-iteration fine-tuning recipe without a data set: combine
# it with a data-set base (ours in datasets/, or mmseg's `mmseg::_base_/datasets/*.py`) and set
# the heads' num_classes. It holds no data key (crop_size, pipelines, dataloaders, evaluators),
# so any data-set base composes with it; the model's 512x512 sizes match mmseg's 512x512
# data-set bases: a base with another crop size needs model.data_preprocessor.size,
# model.backbone.img_size and model.test_cfg.crop_size set to it too.
_base_ = [
    './mae_seg.py',  # first: lets the mmseg:: bases resolve without pkg_resources
    'mmseg::_base_/models/upernet_mae.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
data_preprocessor = dict(size=(512, 512))
# mmseg's EncoderDecoder with the sliding windows run 8 at a time (same logits, see
# BatchedSlideEncoderDecoder); test-time augmentation batches all its views' windows.
model = dict(
    type='BatchedSlideEncoderDecoder',
    data_preprocessor=data_preprocessor,
    # Output of: python tools/model_converters/mae2mmseg.py mae_pretrain_vit_base.pth <this>
    pretrained='pretrain/mae_pretrain_vit_base_mmseg.pth',
    backbone=dict(
        type='MAEViT',
        img_size=(512, 512),
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
    decode_head=dict(in_channels=[768, 768, 768, 768], channels=768),
    auxiliary_head=dict(in_channels=768),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341), window_batch_size=8),
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
    paramwise_cfg=dict(layer_decay_rate=0.65),
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
