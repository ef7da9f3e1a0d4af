# MAE ViT-B/16 + UPerNet fine-tuned on your own data set (configs/_base_/datasets/own_data.py:
# folder layout, classes, palette, reduce_zero_label, ignore_index) with the ADE20K recipe.
# The heads' class count and ignored label are read from that file, never typed here.
# Walk-through: docs/own_data.md. A smaller data set usually wants fewer iterations:
#   --cfg-options train_cfg.max_iters=20000 param_scheduler.1.end=20000 \
#       train_cfg.val_interval=2000 default_hooks.checkpoint.interval=2000
_base_ = [
    '../_base_/mae-base_upernet_amp-160k.py',  # the model and schedule, no data set
    '../_base_/datasets/own_data.py',
]
model = dict(
    decode_head=dict(num_classes={{_base_.num_classes}}, ignore_index={{_base_.ignore_index}}),
    auxiliary_head=dict(num_classes={{_base_.num_classes}}, ignore_index={{_base_.ignore_index}}),
)
# 8 GPUs x 2 images.
train_dataloader = dict(batch_size=2)
