"""Colour-coded masks to index PNGs: every class-colour format, unknown colours reported."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from mmseg.datasets.transforms import LoadAnnotations
from PIL import Image

from mae_seg.datasets.color_masks import (
    colour_mask_to_index,
    convert_colour_masks,
    read_class_colours,
)
from mae_seg.errors import ColourMaskError

ROOT = Path(__file__).resolve().parents[2]
NAMES = ('background', 'road', 'car')
COLOURS = [(0, 0, 0), (128, 64, 128), (0, 0, 142)]
FORMATS = {
    'labelmap.txt': '# label:color_rgb:parts:actions\n'
    + ''.join(f'{name}:{r},{g},{b}::\n' for name, (r, g, b) in zip(NAMES, COLOURS)),
    'classes.csv': 'name,r,g,b\n'
    + ''.join(f'{name},{r},{g},{b}\n' for name, (r, g, b) in zip(NAMES, COLOURS)),
    'named.json': json.dumps({name: list(colour) for name, colour in zip(NAMES, COLOURS)}),
    'list.json': json.dumps([{'name': n, 'color': list(c)} for n, c in zip(NAMES, COLOURS)]),
    'mmseg.json': json.dumps({'classes': NAMES, 'palette': [list(c) for c in COLOURS]}),
}


def load_tool():
    path = ROOT / 'tools/dataset_converters/color_masks_to_index.py'
    spec = importlib.util.spec_from_file_location('color_masks_to_index', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def indices():
    rng = np.random.default_rng(0)
    return rng.integers(0, 3, size=(12, 20)).astype(np.uint8)


@pytest.mark.parametrize('name', sorted(FORMATS))
def test_every_class_colour_format_reads_the_same(tmp_path, name):
    path = tmp_path / name
    path.write_text(FORMATS[name])
    classes = read_class_colours(path)
    assert classes.names == NAMES
    assert classes.palette() == [list(colour) for colour in COLOURS]


@pytest.mark.parametrize(
    ('name', 'text', 'message'),
    [
        ('labelmap.txt', 'a:1,2::\n', r'line 1: expected a colour r,g,b of 0-255'),
        ('labelmap.txt', 'a:1,2,300::\n', r'expected a colour'),
        ('labelmap.txt', 'a:1,2,3::\nb:1,2,3::\n', r'a and b share colour \(1, 2, 3\)'),
        ('c.csv', 'a,1,2\n', r'line 1: expected name,r,g,b'),
        ('c.json', '{"classes": ["a"], "palette": []}', r'1 classes but 0 colours'),
        ('c.json', '{not json', r'is not valid JSON'),
        ('labelmap.txt', '# nothing\n', r'lists no class'),
    ],
)
def test_bad_class_colour_files_are_named(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ColourMaskError, match=message):
        read_class_colours(path)


def test_round_trip_gives_back_the_indices_the_loader_reads(tmp_path, indices):
    """Oracle: mmseg's LoadAnnotations on the written file returns the painted indices."""
    (tmp_path / 'labelmap.txt').write_text(FORMATS['labelmap.txt'])
    classes = read_class_colours(tmp_path / 'labelmap.txt')
    (tmp_path / 'rgb' / 'sub').mkdir(parents=True)
    Image.fromarray(classes.colours[indices]).save(tmp_path / 'rgb/sub/a.png')
    report = convert_colour_masks(tmp_path / 'rgb', tmp_path / 'out', classes)
    assert report.converted == [str(tmp_path / 'out/sub/a.png')] and not report.unknown
    written = Image.open(tmp_path / 'out/sub/a.png')
    assert written.mode == 'P'
    loaded = LoadAnnotations()(
        dict(seg_map_path=str(tmp_path / 'out/sub/a.png'), reduce_zero_label=False, seg_fields=[])
    )['gt_seg_map']
    np.testing.assert_array_equal(loaded, indices)


def test_unknown_colours_are_reported_not_mapped(tmp_path, indices):
    (tmp_path / 'classes.csv').write_text(FORMATS['classes.csv'])
    classes = read_class_colours(tmp_path / 'classes.csv')
    rgb = classes.colours[indices].copy()
    rgb[0, :5] = (128, 64, 129)  # one off from 'road': an anti-aliased edge
    (tmp_path / 'rgb').mkdir()
    Image.fromarray(rgb).save(tmp_path / 'rgb/a.png')
    Image.fromarray(classes.colours[indices]).save(tmp_path / 'rgb/b.png')
    report = convert_colour_masks(tmp_path / 'rgb', tmp_path / 'out', classes)
    assert [str(unknown) for unknown in report.unknown] == [
        f'{tmp_path}/rgb/a.png: colour (128, 64, 129) in 5 pixels is not in the class list'
    ]
    assert report.skipped == [str(tmp_path / 'rgb/a.png')]
    assert sorted(path.name for path in (tmp_path / 'out').iterdir()) == ['b.png']
    # Asked for explicitly, unknown pixels get the given index and are still reported.
    index, unknown = colour_mask_to_index(rgb, classes, unknown_index=255)
    assert unknown == {(128, 64, 129): 5}
    assert (index[0, :5] == 255).all() and (index[1:] == indices[1:]).all()


def test_cli_exit_codes_and_one_line_errors(tmp_path, indices, capsys):
    tool = load_tool()
    (tmp_path / 'labelmap.txt').write_text(FORMATS['labelmap.txt'])
    classes = read_class_colours(tmp_path / 'labelmap.txt')
    (tmp_path / 'rgb').mkdir()
    rgb = classes.colours[indices].copy()
    rgb[1, 1] = (9, 9, 9)
    Image.fromarray(rgb).save(tmp_path / 'rgb/a.png')
    argv = [
        str(tmp_path / 'rgb'),
        str(tmp_path / 'out'),
        '--colours',
        str(tmp_path / 'labelmap.txt'),
    ]
    assert tool.main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        f'color_masks_to_index.py: error: {tmp_path}/rgb/a.png: colour (9, 9, 9) in 1 pixels is '
        f'not in the class list; add it to {tmp_path}/labelmap.txt or pass --unknown-index 255'
    )
    assert not (tmp_path / 'out' / 'a.png').exists()
    assert tool.main(argv + ['--unknown-index', '255']) == 0
    assert np.asarray(Image.open(tmp_path / 'out/a.png'))[1, 1] == 255
    assert tool.main([str(tmp_path / 'none'), str(tmp_path / 'o'), '--colours', argv[3]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f'color_masks_to_index.py: error: no *.png masks under {tmp_path}/none']


def test_index_masks_given_by_mistake_are_named_in_one_line(tmp_path, indices, capsys):
    (tmp_path / 'labelmap.txt').write_text(FORMATS['labelmap.txt'])
    (tmp_path / 'masks').mkdir()
    for number in range(3):  # index masks as 'L' PNGs, and one saved as three equal channels
        Image.fromarray(indices.astype(np.uint8)).save(tmp_path / f'masks/{number}.png')
    Image.fromarray(np.repeat(indices[..., None], 3, 2).astype(np.uint8)).save(
        tmp_path / 'masks/rgb.png'
    )
    argv = [str(tmp_path / 'masks'), str(tmp_path / 'out'), '--colours']
    assert load_tool().main([*argv, str(tmp_path / 'labelmap.txt')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    values = ', '.join(map(str, np.unique(indices).tolist()))
    assert err == [
        'color_masks_to_index.py: error: 4 masks are grey (one channel, or three equal '
        f'channels) with values that are no listed colour (first {tmp_path}/masks/0.png: values '
        f'{values}): these look like index masks already, which the config reads as they are; '
        'they were not converted',
        'color_masks_to_index.py: error: 4 masks not written (0 with unknown colours, 4 grey)',
    ]
    assert not (tmp_path / 'out').exists()


def test_grey_class_colours_still_convert(tmp_path, indices):
    (tmp_path / 'classes.csv').write_text('background,0,0,0\nforeground,255,255,255\n')
    classes = read_class_colours(tmp_path / 'classes.csv')
    (tmp_path / 'masks').mkdir()
    binary = (indices > 0).astype(np.uint8)
    Image.fromarray(binary * 255).save(tmp_path / 'masks/a.png')
    report = convert_colour_masks(tmp_path / 'masks', tmp_path / 'out', classes)
    assert report.grey == {} and report.skipped == []
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / 'out/a.png')), binary)


def test_unknown_colour_lines_are_capped(tmp_path, indices, capsys):
    (tmp_path / 'labelmap.txt').write_text(FORMATS['labelmap.txt'])
    classes = read_class_colours(tmp_path / 'labelmap.txt')
    (tmp_path / 'rgb').mkdir()
    for number in range(13):
        rgb = classes.colours[indices].copy()
        rgb[0, 0] = (1, 2, 3 + number)
        Image.fromarray(rgb).save(tmp_path / f'rgb/{number:02d}.png')
    argv = [str(tmp_path / 'rgb'), str(tmp_path / 'out'), '--colours']
    assert load_tool().main([*argv, str(tmp_path / 'labelmap.txt')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 12 and all('is not in the class list' in line for line in err[:10])
    assert err[10] == 'color_masks_to_index.py: 3 more unknown colours in 3 masks'
    assert err[11].endswith('13 masks not written (13 with unknown colours, 0 grey)')
