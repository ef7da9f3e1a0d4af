"""tools/train.py --check: every mistake, one line each, before anything long starts."""

import ast
from pathlib import Path

import mmseg
import pytest
from mmengine.config import Config
from quick_start_kit import ShapesSpec, make_shapes_dataset

from mae_seg.errors import ConfigError
from mae_seg.runner import load_config
from mae_seg.runner.checks import build_problems, config_problems, unknown_runner_keys

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / 'configs/quick_start/mae-tiny_upernet_2xb4-400_shapes-128x128.py'
CONFIGS = sorted((ROOT / 'configs').glob('*/*.py'))

# The four mistakes of issue 12, as a new user would type them.
MISTAKES = {
    'model.backbone.type=MAEVit': "model.backbone.type: 'MAEVit' is not a registered model "
    "type (did you mean 'MAEViT'?)",
    'model.backbone.num_layer=2': 'model.backbone.num_layer: MAEViT takes no argument '
    "'num_layer' (did you mean 'num_layers'?)",
    'train_cfg.max_iter=2': 'train_cfg.max_iter: ExactResumeIterBasedTrainLoop takes no '
    "argument 'max_iter' (did you mean 'max_iters'?)",
    'optim_wraper.type=OptimWrapper': 'optim_wraper: not a key the runner reads '
    "(did you mean 'optim_wrapper'?)",
}


@pytest.fixture(scope='module')
def data_options(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('check')
    data_root = make_shapes_dataset(
        tmp / 'ADEChallengeData2016', ShapesSpec(num_train=4, num_val=1, short_side=64)
    )
    return [
        f'train_dataloader.dataset.data_root={data_root}',
        f'val_dataloader.dataset.data_root={data_root}',
        'model.pretrained=None',
    ]


@pytest.fixture
def check(load_tool, capsys, tmp_path):
    """``check(options)``: ``tools/train.py --check`` of the quick start with ``--cfg-options``;
    its status and the lines it printed to stdout and stderr."""

    def run(options):
        argv = [str(QUICK), '--check', '--work-dir', str(tmp_path), '--cfg-options', *options]
        status = load_tool('train.py').main(argv)
        captured = capsys.readouterr()
        assert 'Traceback' not in captured.out + captured.err
        return status, captured.out.strip().splitlines(), captured.err.strip().splitlines()

    return run


def test_all_well_is_one_line(check, tmp_path, data_options):
    status, out, err = check(data_options)
    print(*out, sep='\n')
    assert status == 0 and err == []
    assert out[-1].startswith(f'train.py: {QUICK}: ok: BatchedSlideEncoderDecoder (MAEViT), ')
    assert (
        'ExactResumeIterBasedTrainLoop to 400 iterations; 4 training images, 1 validation'
        in (out[-1])
    )
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize('mistake', MISTAKES)
def test_each_mistake_is_one_line(check, data_options, mistake):
    status, _, err = check([*data_options, mistake])
    assert status == 2
    assert err == [f'train.py: error: {MISTAKES[mistake]}']


def test_all_mistakes_at_once(check, data_options):
    options = [*data_options, *MISTAKES, 'train_dataloader.dataset.data_root=no/such/dir']
    status, _, err = check(options)
    print(*err, sep='\n')
    assert status == 2
    expected = [f'train.py: error: {line}' for line in MISTAKES.values()]
    assert sorted(err[:-1]) == sorted(expected)
    assert err[-1].startswith('train.py: error: train_dataloader: no/such/dir/images/training ')


@pytest.mark.parametrize('config', CONFIGS, ids=lambda path: path.name)
def test_shipped_configs_have_no_problems(config):
    cfg = load_config(str(config))
    assert unknown_runner_keys(cfg) + config_problems(cfg) == []


@pytest.mark.parametrize(('name', 'millions'), [('base', 163.9), ('large', 441.5)])
def test_ade20k_models_build_on_the_meta_device(name, millions):
    config = ROOT / f'configs/mae/mae-{name}_upernet_8xb2-amp-160k_ade20k-512x512.py'
    problems, summary = build_problems(load_config(str(config)))
    assert problems == []
    assert summary.startswith(
        f'BatchedSlideEncoderDecoder (MAEViT), {millions}M parameters; AdamW in '
    )


def test_exact_resume_loop_needs_the_infinite_sampler(check, data_options):
    options = [*data_options, 'train_dataloader.sampler.type=DefaultSampler']
    status, _, err = check(options)
    assert status == 2
    assert err == [
        'train.py: error: train_dataloader.sampler: ExactResumeIterBasedTrainLoop needs '
        "train_dataloader.sampler.type='InfiniteSampler' (mmseg's default for "
        "iteration-based training), got 'DefaultSampler'"
    ]


def _top_level_names(paths) -> set[str]:
    names = set()
    for path in paths:
        for node in ast.parse(Path(path).read_text()).body:
            if isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


@pytest.mark.parametrize(
    'typo, meant',
    [
        ('trian_cfg', 'train_cfg'),
        ('laod_from', 'load_from'),
        ('load_form', 'load_from'),
        ('train_config', 'train_cfg'),
        ('optimizer_wrapper', 'optim_wrapper'),
    ],
)
def test_misspelt_runner_keys_are_reported(typo, meant):
    assert unknown_runner_keys(Config({typo: 1})) == [
        f'{typo}: not a key the runner reads (did you mean {meant!r}?)'
    ]


def test_variables_of_shipped_configs_are_not_typos():
    """Every top-level name of mmseg's configs (when installed with them) and of ours."""
    mmseg_configs = Path(mmseg.__file__).parent / '.mim/configs'
    names = _top_level_names([*mmseg_configs.rglob('*.py'), *ROOT.glob('configs/**/*.py')])
    names |= {
        'norm_cfg', 'crop_size', 'data_root', 'dataset_type', 'checkpoint', 'img_ratios',
        'num_classes', 'classes', 'palette', 'backend_args', 'train_pipeline', 'test_pipeline',
    }  # fmt: skip
    assert len(names) > 20
    assert unknown_runner_keys(Config(dict.fromkeys(names, 1))) == []


TEST_CFG_MISTAKES = {
    'model.test_cfg.strde=[85,85]': 'model.test_cfg.strde: BatchedSlideEncoderDecoder reads '
    "no test_cfg key 'strde' (did you mean 'stride'?)",
    'model.test_cfg.mode=slid': "model.test_cfg.mode: 'slid' is not 'whole' or 'slide' "
    "(did you mean 'slide'?)",
    'train_dataloader.batch_size=abc': "train_dataloader.batch_size: 'abc' is not a positive "
    'integer',
    'test_dataloader.num_workers=-1': 'test_dataloader.num_workers: -1 is not an integer, 0 or '
    'more',
}


@pytest.mark.parametrize('mistake', TEST_CFG_MISTAKES)
def test_test_cfg_and_dataloader_numbers_are_checked(mistake):
    key, value = mistake.split('=')
    cfg = load_config(str(QUICK), {key: eval(value) if value[0] in '[-' else value})
    assert config_problems(cfg) == [TEST_CFG_MISTAKES[mistake]]


def test_slide_mode_needs_crop_size_and_stride():
    cfg = load_config(str(QUICK))
    cfg.model.test_cfg = dict(mode='slide', crop_size=(64, 64))
    assert config_problems(cfg) == [
        "model.test_cfg.stride: slide mode needs it (a window's (height, width))"
    ]
    cfg.model.test_cfg = dict(
        mode='slide', crop_size=(64, 64), stride=(32, 32), window_batch_size=4
    )
    assert config_problems(cfg) == []


def test_load_config_with_check_raises_the_first_problem():
    options = {'model.backbone.num_layer': 2, 'model.test_cfg.strde': [8, 8]}
    assert load_config(str(QUICK), options).model.backbone.num_layer == 2
    with pytest.raises(ConfigError) as error:
        load_config(str(QUICK), options, check=True)
    assert str(error.value) == (
        "model.backbone.num_layer: MAEViT takes no argument 'num_layer' (did you mean "
        "'num_layers'?) (1 more problems)"
    )


def test_dataset_of_a_loader_with_problems_is_not_built(check, data_options):
    status, _, err = check([*data_options, 'val_dataloader.dataset.seg_map_sufix=.png'])
    assert status == 2
    assert err == [
        'train.py: error: val_dataloader.dataset.seg_map_sufix: ADE20KDataset takes no argument '
        "'seg_map_sufix' (did you mean 'seg_map_suffix'?)"
    ]


def test_layer_decay_depth_given_twice_and_different_is_one_line(check, data_options):
    status, _, err = check([*data_options, 'optim_wrapper.paramwise_cfg.num_layers=12'])
    assert status == 2
    assert err == [
        'train.py: error: optim_wrapper.paramwise_cfg.num_layers=12 but the backbone has 4 '
        'transformer blocks (model.backbone.num_layers=4): MAELayerDecayOptimizerConstructor '
        'reads the depth from the model; delete paramwise_cfg.num_layers, or make it equal '
        'model.backbone.num_layers'
    ]


def test_every_tool_finds_the_layer_decay_depth_from_the_config_alone():
    """load_config(check=True), which every tool calls, builds nothing."""
    given = {'optim_wrapper.paramwise_cfg.num_layers': 4}
    assert load_config(str(QUICK), given, check=True).optim_wrapper.paramwise_cfg.num_layers == 4
    # The backbone's depth changed alone: the constructor follows it.
    load_config(str(QUICK), {'model.backbone.num_layers': 2}, check=True)
    with pytest.raises(ConfigError, match=r'^optim_wrapper.paramwise_cfg.num_layers=4 but the '):
        load_config(str(QUICK), {**given, 'model.backbone.num_layers': 2}, check=True)
