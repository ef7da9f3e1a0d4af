"""The model zoo of configs/mae/: metafile.yaml, the configs and the README tables agree."""

import re
from pathlib import Path

import mmseg
import pytest
import yaml
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[2]
ZOO = ROOT / 'configs' / 'mae'
METAFILE = ZOO / 'metafile.yaml'
MMSEG_METAFILE = Path(mmseg.__file__).parent / '.mim' / 'configs' / 'mae' / 'metafile.yaml'
CONFIG_PATH = re.compile(r'`(configs/[\w./-]+\.py)`')
# ViT widths and depths by the name the metafile gives the backbone.
BACKBONES = {'ViT-B/16': (768, 12), 'ViT-L/16': (1024, 24)}


def models() -> list[dict]:
    return yaml.safe_load(METAFILE.read_text())['Models']


def table_rows(markdown: Path) -> list[str]:
    return [line for line in markdown.read_text().splitlines() if line.startswith('| ')]


def test_every_config_is_in_the_metafile_and_every_entry_has_its_config():
    listed = [model['Config'] for model in models()]
    on_disk = sorted(str(path.relative_to(ROOT)) for path in ZOO.glob('*.py'))
    assert sorted(listed) == on_disk
    assert len(set(listed)) == len(listed)
    for model in models():
        assert (ROOT / model['Config']).is_file(), model['Config']
        assert model['Name'] == Path(model['Config']).stem  # mmseg's convention


def test_entries_name_a_defined_collection_and_the_files_they_point_to():
    metafile = yaml.safe_load(METAFILE.read_text())
    collections = {collection['Name']: collection for collection in metafile['Collections']}
    for collection in collections.values():
        assert (ROOT / collection['README']).is_file()
        assert (ROOT / collection['Code']).is_file()
    for model in models():
        assert model['In Collection'] in collections
        assert (ROOT / model['Code']).is_file()
        for metric in model.get('Results', {}).get('Metrics', {}):
            assert metric in ('mIoU', 'mIoU(ms+flip)')


@pytest.mark.parametrize('model', models(), ids=lambda model: model['Name'])
def test_metadata_is_what_the_config_says(model):
    cfg = Config.fromfile(str(ROOT / model['Config']))
    segmentor = cfg.model.get('module', cfg.model)  # the -ms config wraps it for TTA
    metadata = model['Metadata']
    embed_dims, num_layers = BACKBONES[metadata['backbone']]
    assert (segmentor.backbone.embed_dims, segmentor.backbone.num_layers) == (
        embed_dims,
        num_layers,
    )
    assert metadata['Architecture'] == [metadata['backbone'].split('/')[0], 'UPerNet']
    assert segmentor.decode_head.type == 'UPerHead'
    height, width = segmentor.data_preprocessor.size
    assert metadata['crop size'] == f'({height},{width})'
    assert metadata['lr schd'] == cfg.train_cfg.max_iters
    assert metadata['Batch Size'] == 8 * cfg.train_dataloader.batch_size  # 8xb2 in the name


def test_published_figures_are_mmseg_own():
    """The ADE20K figures are copied from mmseg's metafile, not measured: they must be its."""
    theirs = yaml.safe_load(MMSEG_METAFILE.read_text())['Models']
    published = {model['Name']: model for model in theirs}
    with_results = [model for model in models() if 'Results' in model]
    assert with_results
    for model in with_results:
        reference = published['mae-base_upernet_8xb2-amp-160k_ade20k-512x512']
        assert model['Weights'] == reference['Weights']
        assert model['Results']['Dataset'] == reference['Results']['Dataset']
        for metric, value in model['Results']['Metrics'].items():
            assert value == reference['Results']['Metrics'][metric], (model['Name'], metric)
        assert 'not measured here' in model['Metadata']['Results Source']


def test_readme_tables_name_existing_configs_and_the_metafile_figures():
    for readme in (ZOO / 'README.md', ROOT / 'README.md'):
        named = [path for row in table_rows(readme) for path in CONFIG_PATH.findall(row)]
        assert named, readme
        for path in named:
            assert (ROOT / path).is_file(), f'{readme.relative_to(ROOT)} names {path}'
    zoo_configs = {p for row in table_rows(ZOO / 'README.md') for p in CONFIG_PATH.findall(row)}
    assert {model['Config'] for model in models()} <= zoo_configs
    base = next(m for m in models() if m['Name'].endswith('ade20k-512x512'))
    metrics = base['Results']['Metrics']
    figures = f'| {metrics["mIoU"]:.2f} | {metrics["mIoU(ms+flip)"]:.2f} |'
    for readme in (ZOO / 'README.md', ROOT / 'README.md'):
        assert any(figures in row for row in table_rows(readme)), readme
