"""appview.db.reads.known_followers walks its join from the smaller side (the subject's
followers or the viewer's follows): both walks must give the same accounts in the order the
viewer followed them."""

from __future__ import annotations

from pathlib import Path

from appview import records as r
from appview.changes import PutRecord
from appview.db import index, reads
from appview.db.dialect import SQLITE
from appview.db.schema import migrate
from runtime.sql import transaction
from runtime.sqlite import connect


def _follow(n: int, did: str, subject: str) -> PutRecord:
    at = f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}.000Z"
    value = {"$type": r.FOLLOW, "subject": subject, "createdAt": at}
    return PutRecord(f"at://{did}/{r.FOLLOW}/3kf{n:010d}", did, r.FOLLOW, f"cid{n}", value, at)


def test_known_followers_are_the_same_whichever_side_is_walked(tmp_path: Path) -> None:
    conn = connect(tmp_path / "appview.sqlite")
    migrate(conn, SQLITE)
    viewer, popular, quiet = "did:plc:viewer", "did:plc:popular", "did:plc:quiet"
    friends = [f"did:plc:friend{i}" for i in range(4)]
    # The viewer follows its friends newest-numbered first; everyone follows `popular`,
    # friends 1 and 3 follow `quiet`.
    follows = [(viewer, f) for f in reversed(friends)]
    follows += [(f"did:plc:fan{i}", popular) for i in range(40)]
    follows += [(f, popular) for f in friends] + [(friends[1], quiet), (friends[3], quiet)]
    changes = [_follow(n, did, subject) for n, (did, subject) in enumerate(follows)]
    transaction(conn, index.apply, (changes, "test", 1))
    # popular: 44 followers against the viewer's 4 follows (walked from the viewer);
    # quiet: 2 followers (walked from them); both at once: 46 against 4 × 2.
    for subjects in ([popular], [quiet], [popular, quiet]):
        found = reads.known_followers(conn, viewer, subjects)
        assert found.get(popular, []) == (
            [friends[3], friends[2], friends[1], friends[0]] if popular in subjects else []
        )
        assert found.get(quiet, []) == ([friends[3], friends[1]] if quiet in subjects else [])
    conn.close()
