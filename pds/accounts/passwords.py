"""Password hashing with argon2id (PyNaCl, interactive limits: ~50-80 ms on this machine).

Hashing runs in a worker thread so a login never stalls the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Final

import nacl.exceptions
import nacl.pwhash

# Long enough for any passphrase; bounded so hashing cost stays fixed.
MAX_PASSWORD_BYTES: Final = 256


async def hash_password(password: str) -> str:
    hashed = await asyncio.to_thread(nacl.pwhash.argon2id.str, password.encode())
    return hashed.decode("ascii")


async def verify_password(password: str, hashed: str) -> bool:
    data = password.encode()
    if len(data) > MAX_PASSWORD_BYTES:
        return False

    def check() -> bool:
        try:
            return bool(nacl.pwhash.argon2id.verify(hashed.encode("ascii"), data))
        except nacl.exceptions.InvalidkeyError:
            return False

    return await asyncio.to_thread(check)
