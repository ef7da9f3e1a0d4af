# MAE ViT-B/16 + UPerNet on ADE20K at 512x512: mmseg's recipe (48.13 mIoU single-scale,
# 48.70 multi-scale + flip, V100) with real mixed precision and the min-size multi-scale test.
_base_ = [
    '../_base_/mae-base_upernet_amp-160k.py',  # the model and schedule, no data set
    'mmseg::_base_/datasets/ade20k.py',
]
crop_size = (512, 512)
model = dict(
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150),
)

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
