"""`compress=true`: each event one zstd frame made with the official Jetstream's dictionary
(blog-jetstream.md, "Compression"; the dictionary is data, see data/SOURCE.md).

The frame names the dictionary's ID, as the official server's do, so a client holding the
dictionary decodes it with any zstd library. An event is compressed once, for every
compressing subscriber that receives it.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

import zstandard

from jetstream.events import Entry

__all__ = ["DICTIONARY", "compressed", "decompressor"]

DICTIONARY: Final = zstandard.ZstdCompressionDict(
    resources.files("jetstream").joinpath("data/zstd_dictionary").read_bytes()
)
# The official server's encoder: the dictionary, a 128 KiB window, the default level.
_COMPRESSOR: Final = zstandard.ZstdCompressor(
    dict_data=DICTIONARY,
    compression_params=zstandard.ZstdCompressionParameters.from_level(
        3, window_log=17, write_dict_id=True, write_content_size=True, write_checksum=False
    ),
)


def compressed(entry: Entry) -> bytes:
    """The event's zstd frame, made on first use."""
    packed = entry.packed
    if packed is None:
        packed = entry.packed = _COMPRESSOR.compress(entry.body)
    return packed


def decompressor() -> zstandard.ZstdDecompressor:
    """What a client decodes the frames with."""
    return zstandard.ZstdDecompressor(dict_data=DICTIONARY)
