"""Convert an MAE ViT encoder checkpoint to MAEViT / mmseg ``MAE`` names.

Reads the official MAE release and timm (``{'model': ...}`` or plain, ``.pth`` or
``.safetensors``), mmpretrain / mmselfsup (``backbone.*``), mmseg's own layout and
transformers' ViTMAE / ViT (a Hugging Face hub model folder, or its weights file; its
``config.json`` gives heads and LayerNorm epsilon), from a path or an ``http(s)://`` URL
(downloaded once into ``${XDG_CACHE_HOME:-~/.cache}/mae_seg``);
keeps the encoder, drops decoder and heads, and writes ``{'meta', 'state_dict'}`` for
``init_cfg=dict(type='Pretrained', checkpoint=DST)``. Files are loaded with
``weights_only=True`` and the output is written atomically.

Exit status: 0 done; 1 ``--verify`` found a difference above 1e-4 (nothing written);
2 bad input (one ``mae2mmseg: error: ...`` line on stderr, nothing written).

Examples::

    python tools/model_converters/mae2mmseg.py \\
        https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_base.pth \\
        pretrain/mae_pretrain_vit_base_mmseg.pth --verify
    huggingface-cli download facebook/vit-mae-base --local-dir hub/vit-mae-base
    python tools/model_converters/mae2mmseg.py hub/vit-mae-base \\
        pretrain/vit-mae-base_mmseg.pth --verify
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mae_seg.convert import (
    LAYOUTS,
    Conversion,
    convert_checkpoint,
    describe_layout,
    resolve_num_heads,
    save_conversion,
)
from mae_seg.convert.verify import VERIFY_TOLERANCE, describe_verification, verify
from mae_seg.errors import CheckpointError
from mae_seg.io import check_output_path, summarize_keys, summarize_modules

PROG = 'mae2mmseg'


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line and exit status 2, like the converter's own errors."""

    def error(self, message: str) -> None:
        self.exit(2, f'{self.prog}: error: {message} (see --help)\n')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _Parser(
        prog=PROG,
        description='Convert an MAE ViT encoder checkpoint (official MAE / timm, mmpretrain, '
        'mmseg, transformers / Hugging Face hub) to MAEViT / mmseg MAE names.',
        epilog='exit status: 0 written; 1 --verify failed (nothing written); 2 bad input '
        '(one error line, nothing written)',
    )
    parser.add_argument(
        'src',
        help='checkpoint path or http(s):// URL (.pth, .bin or .safetensors), or a Hugging '
        'Face hub model folder (config.json + model.safetensors or pytorch_model.bin)',
    )
    parser.add_argument('dst', help='output .pth file')
    parser.add_argument(
        '--layout',
        default='auto',
        choices=['auto', *LAYOUTS],
        help='source layout (default: detected from the key structure)',
    )
    parser.add_argument(
        '--num-heads',
        type=int,
        help='attention heads, which the weights do not store (default: from config.json '
        'for hub folders, else the released MAE value for widths 768/1024/1280, else '
        'width // 64); used by --verify and the printed config',
    )
    parser.add_argument(
        '--verify',
        action='store_true',
        help=f'compare features with a reference model before writing (transformers ViTMAEModel '
        f'for hub checkpoints, else timm VisionTransformer); exit 1 above {VERIFY_TOLERANCE:.0e}',
    )
    parser.add_argument('--force', action='store_true', help='replace DST if it exists')
    parser.add_argument(
        '--cache-dir', help='download cache for URLs (default: ~/.cache/mae_seg/checkpoints)'
    )
    return parser.parse_args(argv)


def _summary(conversion: Conversion, num_heads: int, heads_origin: str) -> list[str]:
    arch, converted = conversion.architecture, conversion.converted
    yes_no = {True: 'yes', False: 'no'}
    lines = [
        f'{PROG}: {conversion.source}: {describe_layout(conversion.layout)} layout, '
        f'{len(conversion.source_state_dict)} tensors',
        f'  encoder  {arch.num_layers} layers, {arch.embed_dims} dims, mlp_ratio '
        f'{arch.mlp_ratio}, patch {arch.patch_size}, pos_embed grid {arch.grid}x{arch.grid} '
        f'(img_size {arch.img_size}), final norm {yes_no[arch.final_norm]}, layer scale '
        f'{yes_no[arch.layer_scale]}, relative position bias '
        f'{yes_no[arch.rel_pos_table is not None]}',
        f'  heads    {num_heads} ({heads_origin})',
        f'  kept     {len(converted.state_dict)} tensors ({converted.renamed} renamed)',
    ]
    if conversion.norm_eps != 1e-6:  # MAE's own; transformers' differs and MAEViT needs it
        origin = 'config.json' if conversion.hub_config else "transformers' default"
        lines.insert(3, f'  LN eps   {conversion.norm_eps:g} ({origin})')
    if converted.dropped:
        lines.append(
            f'  dropped  {len(converted.dropped)} tensors: {summarize_modules(converted.dropped)}'
        )
    left = arch.keys_left_to_mae_vit()
    if left:
        lines.append(f'  not in the checkpoint (MAEViT initialises them): {summarize_keys(left)}')
    return lines


def _config_hint(conversion: Conversion, num_heads: int, dst: str) -> str:
    arch = conversion.architecture
    extras = '' if arch.patch_size == 16 else f', patch_size={arch.patch_size}'
    if conversion.norm_eps != 1e-6:
        extras += f", norm_cfg=dict(type='LN', eps={conversion.norm_eps:g})"
    return (
        f"  config   backbone=dict(type='MAEViT', embed_dims={arch.embed_dims}, "
        f'num_layers={arch.num_layers}, num_heads={num_heads}, mlp_ratio={arch.mlp_ratio}'
        f"{extras}, init_cfg=dict(type='Pretrained', checkpoint='{dst}'))"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mae_seg.compat import setup_openmmlab

    setup_openmmlab()  # before mmengine reads a config or a checkpoint
    try:
        check_output_path(args.dst, overwrite=args.force)
        conversion = convert_checkpoint(args.src, args.layout, cache_dir=args.cache_dir)
        num_heads, heads_origin = resolve_num_heads(
            conversion.architecture, args.num_heads, conversion.config_num_heads
        )
        print('\n'.join(_summary(conversion, num_heads, heads_origin)))
        if args.verify:
            diff = verify(conversion, num_heads)
            verdict = 'ok' if diff <= VERIFY_TOLERANCE else 'FAILED'
            print(
                f'  verify   max abs diff {diff:.2e} over {describe_verification(conversion)} '
                f'(tolerance {VERIFY_TOLERANCE:.0e}): {verdict}'
            )
            if diff > VERIFY_TOLERANCE:
                print(
                    f'{PROG}: verification failed (max abs diff {diff:.2e}); {args.dst} not '
                    'written',
                    file=sys.stderr,
                )
                return 1
        save_conversion(conversion, args.dst, overwrite=args.force)
    except CheckpointError as error:
        print(f'{PROG}: error: {error}'.replace('\n', ' '), file=sys.stderr)
        return 2
    size_mib = Path(args.dst).stat().st_size / 2**20
    print(f'  wrote    {args.dst} ({size_mib:.1f} MiB)')
    print(_config_hint(conversion, num_heads, args.dst))
    return 0


if __name__ == '__main__':
    sys.exit(main())
