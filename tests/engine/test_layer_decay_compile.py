"""The layer-decay optimizer steps under torch.compile, as mmengine's ``compile=True`` runs it."""

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from test_layer_decay import optim_cfg, tiny_segmentor


@pytest.mark.slow
def test_param_groups_are_plain_dicts_that_compile():
    model = tiny_segmentor()
    # From a Config, as the runner builds it: mmengine would hand back ConfigDict groups.
    cfg = Config(dict(optim_wrapper=optim_cfg('MAELayerDecayOptimizerConstructor')))
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    assert {type(group) for group in optimizer.param_groups} == {dict}
    assert len(optimizer.param_groups) > 4 and 'lr_scale' in optimizer.param_groups[0]

    for param in model.parameters():
        param.grad = torch.ones_like(param)
    before = model.backbone.cls_token.detach().clone()
    torch._dynamo.reset()
    torch.compile(optimizer.step, backend='aot_eager')()
    assert not torch.equal(model.backbone.cls_token, before)
