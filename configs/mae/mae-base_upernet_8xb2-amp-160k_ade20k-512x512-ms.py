# Test-only: the base model evaluated with multi-scale (0.5-1.75) + flip augmentation merged
# by mmseg's SegTTAModel (as BatchedSlideSegTTAModel: the windows of all views batched),
# sliding windows at every scale, every short side >= 512 (48.70 mIoU).
_base_ = './mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py'

model = dict(_delete_=True, type='BatchedSlideSegTTAModel', module={{_base_.model}})
test_dataloader = dict(batch_size=1, dataset=dict(pipeline={{_base_.tta_pipeline}}))
