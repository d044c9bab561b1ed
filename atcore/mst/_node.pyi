"""Types of the C module atcore/mst/_node.c (the strict MST node decoder)."""

MAX_KEY_LENGTH: int
MAX_ENTRIES: int

def decode_fields(
    data: bytes,
) -> tuple[
    tuple[tuple[bytes, ...], tuple[bytes, ...], tuple[bytes | None, ...]],
    int | None,
    tuple[int, ...],
]: ...
def is_valid_key(key: bytes) -> bool: ...
def key_height(key: bytes) -> int: ...
