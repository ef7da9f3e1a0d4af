# Your own data set in the common folder layout, read by mmseg's BaseSegDataset:
#   data/own_data/images/train/NAME.jpg       data/own_data/annotations/train/NAME.png
#   data/own_data/images/val/NAME.jpg         data/own_data/annotations/val/NAME.png
# Annotations hold one class index per pixel (PNG mode 'L' or 'P'; colour-coded masks:
# tools/dataset_converters/color_masks_to_index.py). Check it all with
# tools/analysis/check_dataset.py CONFIG. Everything about the classes is set here, once: the
# model configs take num_classes and ignore_index from this file (docs/own_data.md).
data_root = 'data/own_data'
classes = ('background', 'foreground')
palette = [[0, 0, 0], [220, 20, 60]]  # one (r, g, b) per class; [] for random colours
# False: annotation value k is class k. True (ADE20K's convention): 0 marks unlabelled pixels,
# which become 255, and value k is class k-1.
reduce_zero_label = False
# The label the loss and the mIoU skip; reduce_zero_label writes 255, so keep 255 with it.
ignore_index = 255
num_classes = len(classes)
img_suffix = '.jpg'
seg_map_suffix = '.png'

dataset_type = 'BaseSegDataset'
crop_size = (512, 512)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations'),  # after Resize: the metric compares at the original size
    dict(type='PackSegInputs'),
]
# Multi-scale + flip test (tools/test.py --tta), each short side kept >= the crop size.
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
own_data = dict(
    type=dataset_type,
    data_root=data_root,
    img_suffix=img_suffix,
    seg_map_suffix=seg_map_suffix,
    metainfo=dict(classes=classes, palette=palette),
    reduce_zero_label=reduce_zero_label,
    ignore_index=ignore_index,
)
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        **own_data,
        data_prefix=dict(img_path='images/train', seg_map_path='annotations/train'),
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        **own_data,
        data_prefix=dict(img_path='images/val', seg_map_path='annotations/val'),
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'], ignore_index=ignore_index)
test_evaluator = val_evaluator
