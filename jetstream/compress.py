"""zstd frames made with the official Jetstream's dictionaries (blog-jetstream.md,
"Compression"; the dictionaries are data, see data/SOURCE.md).

`/subscribe?compress=true` uses the v1 dictionary; subscribeEvents uses its own, named by ID
(`zstdDictionary=<id>`, served by getZstdDictionary). Each frame names its dictionary's ID, as
the official server's do, so a client holding the dictionary decodes it with any zstd library.
An event is compressed once, for every compressing subscriber that receives it.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

import zstandard

from jetstream.events import Entry

__all__ = ["V1", "V2", "Dictionary", "compressed"]


class Dictionary:
    def __init__(self, name: str) -> None:
        self.data = resources.files("jetstream").joinpath(f"data/{name}").read_bytes()
        self.dict = zstandard.ZstdCompressionDict(self.data)
        self.id: int = self.dict.dict_id()
        # The official server's encoder: the dictionary, a 128 KiB window, the default level.
        params = zstandard.ZstdCompressionParameters.from_level(
            3, window_log=17, write_dict_id=True, write_content_size=True, write_checksum=False
        )
        self._compressor = zstandard.ZstdCompressor(dict_data=self.dict, compression_params=params)

    def compress(self, data: bytes) -> bytes:
        return self._compressor.compress(data)

    def decompressor(self) -> zstandard.ZstdDecompressor:
        """What a client decodes the frames with."""
        return zstandard.ZstdDecompressor(dict_data=self.dict)


V1: Final = Dictionary("zstd_dictionary")
V2: Final = Dictionary("subscribe_events_20260811.zdict")


def compressed(entry: Entry) -> bytes:
    """The event's v1 zstd frame, made on first use."""
    packed = entry.packed
    if packed is None:
        packed = entry.packed = V1.compress(entry.body)
    return packed
