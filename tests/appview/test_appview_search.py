"""Search and discovery, every response checked against its lexicon: full-text post search kept
in step with creates, updates and deletes, with its operators, filters, sorts and cursors;
quotes; the viewer's own likes; actor search and typeahead; suggestions; blocks and mutes both
ways; bad params and missing auth."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

from appview.db import schema
from appview.db.dialect import POSTGRES, SQLITE
from atcore.identity.plc_client import PlcClient
from tests.appview.conftest import Appview, appview_config, serve_appview
from tests.appview.test_appview_graph import call, profiles
from tests.appview.test_appview_index import accounts, record, ref
from tests.relay.fake_pds import TIME, FakeAccount, FakePds, post

Net = tuple[FakePds, str, PlcClient]


async def texts(av: Appview, viewer: FakeAccount | None = None, **params: Any) -> list[str]:
    body = await av.ok("app.bsky.feed.searchPosts", viewer, **params)
    return [p["record"]["text"] for p in body["posts"]]


async def handles_known(av: Appview, *people: FakeAccount) -> None:
    """Wait until the appview has resolved each account's handle beside the firehose."""
    for _ in range(200):
        found = await av.ok("app.bsky.actor.getProfiles", actors=[p.did for p in people])
        if all(p["handle"] != "handle.invalid" for p in found["profiles"]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("handles were not resolved")


async def test_search_posts(tmp_path: Path, plc_url: str, network: Net) -> None:
    upstream, url, _ = network
    alice, bob = await accounts(network, "alice", "bob")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        await profiles(av, alice, bob)
        fox_path = "app.bsky.feed.post/3kaaaaaaaaaa2"
        fox = await av.write(alice, {fox_path: post("The quick brown Fox")})
        await av.write(alice, {"app.bsky.feed.post/3kaaaaaaaaaa3": post("a lazy dog")})
        french = {**post("quick réponse"), "langs": ["fr"]}
        await av.write(bob, {"app.bsky.feed.post/3kbbbbbbbbbb2": french})
        linked = {
            **post("see example"),
            "facets": [
                {
                    "index": {"byteStart": 0, "byteEnd": 3},
                    "features": [
                        {"$type": "app.bsky.richtext.facet#mention", "did": alice.did},
                        {"$type": "app.bsky.richtext.facet#link", "uri": "https://Example.com/a"},
                    ],
                }
            ],
        }
        await av.write(bob, {"app.bsky.feed.post/3kbbbbbbbbbb5": linked})
        fox_ref = ref(alice, fox, fox_path)
        like = record("app.bsky.feed.like", subject=fox_ref)
        await av.write(bob, {"app.bsky.feed.like/3kbbbbbbbbbb3": like})

        assert sorted(await texts(av, q="quick")) == ["The quick brown Fox", "quick réponse"]
        assert await texts(av, q="QUICK fox") == ["The quick brown Fox"]
        assert await texts(av, q="reponse") == ["quick réponse"]  # diacritics folded
        assert await texts(av, q=f"quick from:{bob.did}") == ["quick réponse"]
        assert await texts(av, bob, q="quick from:me") == ["quick réponse"]
        assert await texts(av, q="quick", author=alice.did) == ["The quick brown Fox"]
        assert await texts(av, q="quick", lang="fr") == ["quick réponse"]
        assert await texts(av, q="quick lang:fr") == ["quick réponse"]
        assert await texts(av, q="quick", since="2025-01-02") == []
        assert len(await texts(av, q="quick", until="2025-01-02T00:00:00Z")) == 2
        assert (await texts(av, q="quick", sort="top"))[0] == "The quick brown Fox"
        assert await texts(av, q="see", mentions=alice.did) == ["see example"]
        assert await texts(av, q="see", mentions=bob.did) == []
        assert await texts(av, q="see", domain="example.com") == ["see example"]
        assert await texts(av, q="see", domain="example.co") == []
        assert await texts(av, q="see", url="https://Example.com/a") == ["see example"]
        # FTS5 syntax in the query is only ever text.
        assert await texts(av, q='quick" OR NEAR(dog') == []
        assert await texts(av, q="*") == []
        # Words are folded and split alike on both stores (FTS5's unicode61 on SQLite, the
        # tsvector on PostgreSQL): diacritics and case dropped, split at every character that
        # is not a letter or digit, a term with several words a phrase, any script.
        news = "Über-cool news at sample.org/path — ПРИВЕТ мир"
        await av.write(bob, {"app.bsky.feed.post/3kbbbbbbbbbb6": post(news)})
        for q in ("uber", "SAMPLE", "cool-news", "news cool", "привет", "path sample.org", "Мир"):
            assert await texts(av, q=q) == [news], q
        for q in ("cool-world", "news-cool", "samp", "org.sample"):
            assert await texts(av, q=q) == [], q

        # Pages of one, newest first and by rank, each post once.
        for sort in ("latest", "top"):
            seen, cursor = [], None
            while True:
                params = {"q": "quick", "limit": 1, "sort": sort}
                body = await av.ok(
                    "app.bsky.feed.searchPosts", **params, **({"cursor": cursor} if cursor else {})
                )
                seen += [p["uri"] for p in body["posts"]]
                cursor = body.get("cursor")
                if cursor is None:
                    break
            assert len(seen) == len(set(seen)) == 2

        # Kept in step: an update replaces the text, a delete removes it.
        await av.write(alice, {fox_path: post("a slow red hen")})
        assert await texts(av, q="fox") == []
        assert await texts(av, q="hen") == ["a slow red hen"]
        await av.write(alice, {fox_path: None})
        assert await texts(av, q="hen") == []

        # Blocks hide posts both ways.
        block = record("app.bsky.graph.block", subject=alice.did)
        await av.write(bob, {"app.bsky.graph.block/3kbbbbbbbbbb4": block})
        assert await texts(av, alice, q="quick") == []
        assert await texts(av, bob, q="lazy") == []
        assert await texts(av, alice, q="see") == []
        assert await texts(av, q="lazy") == ["a lazy dog"]

        for bad in (
            {"q": ""},
            {"q": "quick", "sort": "best"},
            {"q": "quick", "since": "yesterday"},
            {"q": "quick", "cursor": "nonsense"},
            {"q": "quick", "sort": "top", "cursor": "99999999"},
            {"q": "from:nobody.test"},
            {"q": "quick", "limit": 101},
            {"q": "quick " * 200},
            {"q": "quick", "tag": [f"t{n}" for n in range(11)]},
        ):
            response = await av.get("app.bsky.feed.searchPosts", **bad)
            assert response.status_code == 400, (bad, response.text)


async def test_quotes_and_actor_likes(tmp_path: Path, plc_url: str, network: Net) -> None:
    upstream, url, _ = network
    alice, bob, carol = await accounts(network, "alice", "bob", "carol")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        await profiles(av, alice, bob, carol)
        path = "app.bsky.feed.post/3kaaaaaaaaaa2"
        hello = ref(alice, await av.write(alice, {path: post("hello")}), path)
        quote = {**post("look"), "embed": {"$type": "app.bsky.embed.record", "record": hello}}
        for who in (bob, carol):
            await av.write(who, {"app.bsky.feed.post/3kbbbbbbbbbb2": quote})
        body = await av.ok("app.bsky.feed.getQuotes", uri=hello["uri"], cid=hello["cid"])
        assert (body["uri"], body["cid"]) == (hello["uri"], hello["cid"])
        assert sorted(p["author"]["did"] for p in body["posts"]) == sorted([bob.did, carol.did])
        first = await av.ok("app.bsky.feed.getQuotes", uri=hello["uri"], limit=1)
        rest = await av.ok("app.bsky.feed.getQuotes", uri=hello["uri"], cursor=first["cursor"])
        assert len(first["posts"]) == len(rest["posts"]) == 1
        block = record("app.bsky.graph.block", subject=carol.did)
        await av.write(alice, {"app.bsky.graph.block/3kaaaaaaaaaa3": block})
        body = await av.ok("app.bsky.feed.getQuotes", alice, uri=hello["uri"])
        assert [p["author"]["did"] for p in body["posts"]] == [bob.did]
        # The block hides carol's quote from everyone; a postgate detaches bob's.
        assert [
            p["author"]["did"]
            for p in (await av.ok("app.bsky.feed.getQuotes", uri=hello["uri"]))["posts"]
        ] == [bob.did]
        bob_quote = f"at://{bob.did}/app.bsky.feed.post/3kbbbbbbbbbb2"
        gate = record(
            "app.bsky.feed.postgate", post=hello["uri"], detachedEmbeddingUris=[bob_quote]
        )
        await av.write(alice, {"app.bsky.feed.postgate/3kaaaaaaaaaa2": gate})
        assert (await av.ok("app.bsky.feed.getQuotes", uri=hello["uri"]))["posts"] == []

        like = record("app.bsky.feed.like", subject=hello)
        await av.write(bob, {"app.bsky.feed.like/3kbbbbbbbbbb3": like})
        feed = (await av.ok("app.bsky.feed.getActorLikes", bob, actor=bob.did))["feed"]
        assert [item["post"]["uri"] for item in feed] == [hello["uri"]]
        assert feed[0]["post"]["viewer"]["like"].startswith(f"at://{bob.did}/app.bsky.feed.like/")
        # Only the viewer's own likes: anyone else's, or none, is "Profile not found".
        for viewer in (alice, None):
            response = await av.get("app.bsky.feed.getActorLikes", viewer, actor=bob.did)
            assert (response.status_code, response.json()["message"]) == (400, "Profile not found")


async def test_actor_search_typeahead_and_suggestions(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    alice, bob, carol, dave = await accounts(network, "alice", "bob", "carol", "dave")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        named = [
            (alice, "Alice Wonderland"),
            (bob, "Bob Builder"),
            (carol, "Carol"),
            (dave, "Dave"),
        ]
        for person, name in named:
            value = record("app.bsky.actor.profile", displayName=name, description="hi there")
            await av.write(person, {"app.bsky.actor.profile/self": value})
        await handles_known(av, alice, bob, carol, dave)

        async def found(nsid: str, viewer: FakeAccount | None = None, **params: Any) -> list[str]:
            return [a["did"] for a in (await av.ok(nsid, viewer, **params))["actors"]]

        search, typeahead = "app.bsky.actor.searchActors", "app.bsky.actor.searchActorsTypeahead"
        assert await found(search, q="wonder") == [alice.did]
        assert await found(search, q="alice wonderland") == [alice.did]
        assert await found(search, term="bob.te") == [bob.did]
        assert await found(typeahead, q="car") == [carol.did]
        assert await found(typeahead, q="@dave.test") == [dave.did]
        assert len(await found(search, q="hi there")) == 4
        page = await av.ok(search, q="hi", limit=2)
        rest = await av.ok(search, q="hi", limit=2, cursor=page["cursor"])
        assert len({a["did"] for a in page["actors"] + rest["actors"]}) == 4
        assert await found(search, q="nothing-like-this") == []
        assert (await av.get(search, q="hi", cursor="x")).status_code == 400

        # Blocks hide accounts from search both ways, but an exact handle still shows.
        block = record("app.bsky.graph.block", subject=bob.did)
        await av.write(alice, {"app.bsky.graph.block/3kaaaaaaaaaa2": block})
        assert await found(search, bob, q="alice") == []
        assert await found(search, alice, q="bob") == []
        assert await found(typeahead, alice, q="bob.test") == [bob.did]

        # Suggestions: popular accounts first, never the viewer, whom it follows, blocks or mutes.
        for who, rkey in ((bob, "3kbbbbbbbbbb2"), (carol, "3kcccccccccc2")):
            follow = record("app.bsky.graph.follow", subject=dave.did)
            await av.write(who, {f"app.bsky.graph.follow/{rkey}": follow})
        follow = record("app.bsky.graph.follow", subject=carol.did)
        await av.write(bob, {"app.bsky.graph.follow/3kbbbbbbbbbb3": follow})
        assert (await found("app.bsky.actor.getSuggestions"))[:2] == [dave.did, carol.did]
        assert await found("app.bsky.actor.getSuggestions", bob) == []  # follows, blocked by
        response = await call(av, "app.bsky.graph.muteActor", carol, {"actor": dave.did})
        assert response.status_code == 200, response.text
        assert dave.did not in await found("app.bsky.actor.getSuggestions", carol)
        assert carol.did not in await found("app.bsky.actor.getSuggestions", carol)


def test_migration_makes_existing_posts_and_profiles_searchable(tmp_path: Path) -> None:
    """A database written before search existed (schema version 1) is migrated at start with
    what it already holds in the full-text and mention tables."""
    conn = sqlite3.connect(tmp_path / "old.sqlite", isolation_level=None)
    for statement in schema._statements(schema.MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    mention = {"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:b"}
    facet = {"index": {"byteStart": 0, "byteEnd": 2}, "features": [mention]}
    value = json.dumps(
        {
            "$type": "app.bsky.feed.post",
            "text": "an old heron",
            "facets": [facet],
            "createdAt": TIME,
        }
    )
    conn.execute(
        "INSERT INTO record VALUES ('at://did:plc:a/app.bsky.feed.post/1', 'c', 'did:plc:a',"
        " 'app.bsky.feed.post', ?, ?)",
        (value, TIME),
    )
    conn.execute(
        "INSERT INTO profile (did, uri, cid, display_name, indexed_at)"
        " VALUES ('did:plc:a', 'at://did:plc:a/app.bsky.actor.profile/self', 'c', 'Old Ann', ?)",
        (TIME,),
    )
    schema.migrate(conn, SQLITE)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(schema.MIGRATIONS)
    match = "SELECT count(*) FROM post_fts WHERE post_fts MATCH 'heron'"
    assert conn.execute(match).fetchone()[0] == 1
    profiles = "SELECT count(*) FROM profile_fts WHERE profile_fts MATCH 'ann'"
    assert conn.execute(profiles).fetchone()[0] == 1
    mentioned = "SELECT did FROM post_mention"
    assert conn.execute(mentioned).fetchall() == [("did:plc:b",)]
    conn.execute("DELETE FROM record")
    assert conn.execute(match).fetchone()[0] == 0
    conn.close()


def test_full_text_tables_are_sqlite_only() -> None:
    """PostgreSQL has no FTS5 (it keeps a tsvector of post text instead): the migration it
    runs leaves out the FTS5 tables, their triggers and SQLite's JSON backfill, and keeps the
    rest; SQLite leaves out the tsvector column and its index."""
    script = schema.MIGRATIONS[2]
    portable = POSTGRES.ddl(script)
    for sqlite_only in ("fts5", "post_fts", "profile_fts", "json_each", "TRIGGER"):
        assert sqlite_only in script
        assert sqlite_only not in portable
    for table in ("mute", "list_mute", "post_mention"):
        assert f"CREATE TABLE {table} (" in portable
    tsvector = schema.MIGRATIONS[4]
    assert "post_text tsvector" in POSTGRES.ddl(tsvector)
    assert "USING GIN (post_text)" in POSTGRES.ddl(tsvector)
    assert SQLITE.ddl(tsvector).strip() == ""
