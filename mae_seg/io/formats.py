"""Recognising checkpoint file formats from their first bytes."""

from __future__ import annotations

from typing import Literal

FileFormat = Literal['torch', 'torch-legacy', 'safetensors']

_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTOCOL_OPCODE = b'\x80'
_SAFETENSORS_HEADER_SIZE_BYTES = 8


def sniff_format(head: bytes) -> FileFormat | None:
    """The format of a checkpoint file from its first 16 bytes, or ``None`` if it is neither.

    ``torch``: the zip archive of ``torch.save``; ``torch-legacy``: the pickle stream of
    ``_use_new_zipfile_serialization=False``; ``safetensors``: a little-endian 8-byte
    header length followed by a JSON object.
    """
    if head.startswith(_ZIP_MAGIC):
        return 'torch'
    if head.startswith(_PICKLE_PROTOCOL_OPCODE):
        return 'torch-legacy'
    if len(head) > _SAFETENSORS_HEADER_SIZE_BYTES and head[8:9] == b'{':
        return 'safetensors'
    return None
