# MAE ViT-L/16 + UPerNet on ADE20K at 512x512, trained like the ViT-B config.
# Depth-dependent settings follow the published MAE ViT-Large fine-tuning recipe
# (facebookresearch/mae FINETUNE.md, "Script for ViT-Large": --layer_decay 0.75 --drop_path 0.2).
_base_ = './mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py'

model = dict(
    # Output of: python tools/model_converters/mae2mmseg.py mae_pretrain_vit_large.pth <this>
    pretrained='pretrain/mae_pretrain_vit_large_mmseg.pth',
    backbone=dict(
        embed_dims=1024,
        num_layers=24,
        num_heads=16,
        out_indices=[7, 11, 15, 23],
        drop_path_rate=0.2,
        with_cp=True,
    ),
    neck=dict(embed_dim=1024),
    decode_head=dict(in_channels=[1024, 1024, 1024, 1024], channels=1024),
    auxiliary_head=dict(in_channels=1024),
)
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.75))
