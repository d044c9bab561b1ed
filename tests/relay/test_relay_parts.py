"""Relay building blocks: configuration, rate limits, metrics exposition, hostnames, the log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from atcore.frames import IdentityEvent, decode_frame
from atcore.xrpc.errors import InvalidRequest
from relay.config import ConfigError, RelayConfig
from relay.db import Database, accounts, connect, hosts
from relay.db.schema import SCHEMA
from relay.hostcursor import HostCursor
from relay.hosts import is_banned, parse_hostname
from relay.limits import HostLimiter, Rates, SlidingWindow, host_rates
from relay.metrics import Metrics
from relay.repostate import RepoState
from relay.writer import Change, Writer
from runtime.env import parse_duration

DID = "did:plc:abcdefghijklmnopqrstuvwx"


def test_config_reads_the_official_names(tmp_path: Path) -> None:
    env = {
        "RELAY_PERSIST_DIR": str(tmp_path),
        "RELAY_ADMIN_PASSWORD": "pw",
        "RELAY_REPLAY_WINDOW": "24h",
        "RELAY_LENIENT_SYNC_VALIDATION": "true",
        "RELAY_TRUSTED_DOMAINS": "*.host.example.com,big.example.net",
        "RELAY_PLC_HOST": "http://127.0.0.1:2582/",
        "RELAY_HOSTS": "a.example.com, b.example.com",
        "RELAY_HOST_CONCURRENCY": "64",
    }
    config = RelayConfig.load(env)
    assert config.host_concurrency == 64
    assert RelayConfig.load({"RELAY_CONCURRENCY_PER_PDS": "8"}).host_concurrency == 8
    assert config.data_dir == tmp_path and config.admin_password == "pw"
    assert config.replay_window == 86400 and config.lenient_sync
    assert config.plc_url == "http://127.0.0.1:2582"
    assert config.hosts == ("a.example.com", "b.example.com")
    assert config.is_trusted("pds1.host.example.com") and config.is_trusted("big.example.net")
    assert not config.is_trusted("host.example.com") and not config.is_trusted("x.example.net")
    assert RelayConfig.load({}, data_dir="d", port=0).port == 0
    defaults = RelayConfig.load({})
    assert (
        defaults.replay_window == 72 * 3600 and not defaults.dev_mode and not defaults.lenient_sync
    )
    assert defaults.port == 2470 and defaults.admin_password is None
    assert defaults.host_concurrency == 40


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RELAY_REPLAY_WINDOW", "three days"),
        ("RELAY_REPLAY_WINDOW", "0s"),
        ("RELAY_DEV_MODE", "maybe"),
        ("RELAY_DEFAULT_ACCOUNT_LIMIT", "many"),
        ("RELAY_PLC_HOST", "plc.directory"),
        ("RELAY_HOST_CONCURRENCY", "0"),
    ],
)
def test_config_names_the_bad_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        RelayConfig.load({name: value})


def test_durations() -> None:
    assert parse_duration("1h30m") == 5400 and parse_duration("250ms") == 0.25
    assert parse_duration("1.5s") == 1.5
    for bad in ("", "h", "10", "1x", "1h 2m"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_host_rates_follow_the_reference_formula() -> None:
    assert host_rates(100, False) == Rates(50, 2_600, 21_000)
    assert host_rates(10_000, False) == Rates(60, 12_500, 120_000)
    assert host_rates(100, True) == Rates(5_000, 50_000_000, 500_000_000)
    assert host_rates(100, False, per_second=7, per_day=9) == Rates(7, 2_600, 9)


def test_sliding_window_limits_and_recovers() -> None:
    now = [0.0]
    window = SlidingWindow(1.0, 3, lambda: now[0])
    for _ in range(3):
        assert window.wait_time() == 0
        window.take()
    assert window.wait_time() > 0
    now[0] = 1.5  # half of the previous window still weighs: 1.5 of 3 used
    assert window.wait_time() == 0
    window.take()
    window.take()
    assert window.wait_time() > 0
    now[0] = 3.0
    assert window.wait_time() == 0
    limiter = HostLimiter(Rates(2, 1000, 1000), clock=lambda: now[0])
    limiter.take()
    limiter.take()
    assert limiter.wait_time() > 0
    limiter.set_rates(Rates(5, 1000, 1000))
    assert limiter.wait_time() == 0


def test_metrics_exposition_format() -> None:
    metrics = Metrics()
    metrics.declare("relay_events_rejected_total", "Rejected events, by reason")
    metrics.inc("relay_events_rejected_total", reason="bad_signature")
    metrics.inc("relay_events_rejected_total", 2, reason='we"ird\\')
    text = metrics.render(
        {"relay_consumers": ("Consumers", {(): 3}), "relay_rate": ("r", {(): 0.5})}
    )
    assert text.splitlines() == [
        "# HELP relay_events_rejected_total Rejected events, by reason",
        "# TYPE relay_events_rejected_total counter",
        'relay_events_rejected_total{reason="bad_signature"} 1',
        'relay_events_rejected_total{reason="we\\"ird\\\\"} 2',
        "# HELP relay_consumers Consumers",
        "# TYPE relay_consumers gauge",
        "relay_consumers 3",
        "# HELP relay_rate r",
        "# TYPE relay_rate gauge",
        "relay_rate 0.5",
    ]
    assert metrics.by_label("relay_events_rejected_total", "reason")["bad_signature"] == 1


@pytest.mark.parametrize(
    ("given", "dev", "expected"),
    [
        ("pds.example.com", False, "pds.example.com"),
        ("https://PDS.Example.com/", False, "pds.example.com"),
        ("pds.example.com:443", False, "pds.example.com"),
        ("localhost:2583", True, "localhost:2583"),
        ("http://127.0.0.1:2583", True, "127.0.0.1:2583"),
        ("localhost:02583", True, "localhost:2583"),
    ],
)
def test_hostnames_are_normalised(given: str, dev: bool, expected: str) -> None:
    assert parse_hostname(given, dev) == expected


@pytest.mark.parametrize(
    ("given", "dev"),
    [
        ("localhost:2583", False),  # local hosts only in dev mode
        ("localhost", True),  # and only with a port
        ("pds.example.com:8080", False),
        ("10.0.0.1", False),
        ("ftp://pds.example.com", False),
        ("nodots", False),
        ("bad_label.example.com", False),
        ("pds.example.com:99999", False),
        ("localhost:\u00b2", True),  # str.isdigit() says yes, int() says no
        ("localhost:" + "1" * 5000, True),  # past int()'s digit limit
        ("localhost:0", True),
    ],
)
def test_bad_hostnames_are_refused(given: str, dev: bool) -> None:
    with pytest.raises(InvalidRequest):
        parse_hostname(given, dev)


def test_domain_bans_cover_subdomains() -> None:
    assert is_banned("pds.evil.com", ["evil.com"]) and is_banned("evil.com", ["evil.com"])
    assert is_banned("pds.evil.com:8443", ["evil.com"])
    assert not is_banned("notevil.com", ["evil.com"])


def test_unbanning_a_domain_gives_back_only_the_hosts_it_banned(tmp_path: Path) -> None:
    conn = connect(tmp_path / "relay.sqlite")
    conn.executescript(SCHEMA)
    names = ("a.evil.com", "b.evil.com:8443", "c.evil.com", "x.deep.evil.com", "good.com")
    made = {name: hosts.create(conn, name, "active", False, 100) for name in names}

    def status(name: str) -> str:
        row = hosts.get(conn, name)
        assert row is not None
        return row.status

    hosts.ban_host(conn, made["c.evil.com"].id)  # banned on its own first
    assert sorted(hosts.ban_domain(conn, "evil.com")) == sorted(names[:4])
    hosts.ban_domain(conn, "deep.evil.com")  # x is banned already: it stays evil.com's
    assert [status(n) for n in names] == ["banned"] * 4 + ["active"]
    hosts.ban_host(conn, made["b.evil.com:8443"].id)  # and one banned on its own meanwhile

    assert hosts.unban_domain(conn, "evil.com")
    assert not hosts.unban_domain(conn, "evil.com")
    # a and x were only banned by evil.com... but x is still under deep.evil.com
    assert [status(n) for n in names] == ["idle", "banned", "banned", "banned", "active"]
    assert hosts.unban_domain(conn, "deep.evil.com")
    assert status("x.deep.evil.com") == "idle"
    hosts.unban_host(conn, made["c.evil.com"].id)
    assert status("c.evil.com") == "idle"


def test_host_account_counts_stay_exact_on_every_path(tmp_path: Path) -> None:
    """The per-host count the throttling check reads (host_accounts, kept by triggers) follows
    new accounts, a move to another host (an account migrating), a deletion, and is filled in
    for a database whose accounts predate it."""
    conn = connect(tmp_path / "relay.sqlite")
    conn.executescript(SCHEMA)
    one = hosts.create(conn, "one.test", "active", False, 2)
    two = hosts.create(conn, "two.test", "active", False, 2)
    made = [accounts.create_for_host(conn, f"{DID[:-1]}{i}", one.id, limit=2) for i in range(3)]
    assert [a.throttled for a in made] == [False, False, True]  # the third is over the limit
    accounts.create_for_host(conn, made[0].did, one.id, limit=2)  # seen again: no new row
    assert accounts.hosted(conn, one.id) == 3
    moved = RepoState(made[2].did, "3kaaaaaaaaaa2", None, None, "active")
    accounts.save_states(conn, [(two.id, moved), (two.id, moved)])
    assert (accounts.hosted(conn, one.id), accounts.hosted(conn, two.id)) == (2, 1)
    conn.execute("DELETE FROM account WHERE did = ?", (made[0].did,))
    assert accounts.hosted(conn, one.id) == 1
    row = hosts.get(conn, "two.test")
    assert row is not None and row.account_count == 1

    conn.executescript("DROP TABLE host_accounts; DROP TRIGGER account_counted;")
    accounts.create(conn, f"{DID[:-1]}9", one.id, throttled=False)  # uncounted
    conn.executescript(SCHEMA)
    assert (accounts.hosted(conn, one.id), accounts.hosted(conn, two.id)) == (2, 1)


async def test_log_persists_seq_state_and_compacts(tmp_path: Path) -> None:
    async def opened() -> tuple[Database, Writer]:
        db = Database(tmp_path / "relay.sqlite")
        await db.open()
        log = Writer(db, replay_window=0.2, metrics=Metrics())
        await log.start()
        return db, log

    db, log = await opened()
    host = await db.write(hosts.create, "pds.example.com", "active", False, 100)
    state = RepoState(DID, rev="3jzfcijpj2z2a")
    event = IdentityEvent(99, DID, "2025-01-01T00:00:00.000Z", "a.test")
    position = HostCursor(host.id, 0, (), 10)
    for n in range(1, 10):
        position.begin(n)
    seqs = await asyncio.gather(
        *(
            log.commit(Change(host.id, state, event, position=position, upstream_seq=n))
            for n in range(1, 6)
        )
    )
    assert sorted(seqs) == [1, 2, 3, 4, 5]  # type: ignore[type-var]
    for n in range(6, 10):  # events that needed no write
        position.finish(n)
    await log.persist(position)
    stored = await db.read(accounts.get, DID)
    assert stored is not None and stored.state == state
    assert (await db.read(hosts.get, "pds.example.com")).cursor == 9  # type: ignore[union-attr]
    first = decode_frame(await anext(log.subscribe(0)))
    assert isinstance(first, IdentityEvent) and first.seq == 1 and first.handle == "a.test"
    await log.close()
    await db.close()

    db, log = await opened()
    assert log.head == 5
    await asyncio.sleep(0.3)
    assert await log.commit(Change(host.id, event=event)) == 6
    assert await log.compact() == 5
    oldest = decode_frame(await anext(log.subscribe(0)))  # the window now starts at 6
    assert isinstance(oldest, IdentityEvent) and oldest.seq == 6
    await log.close()
    await db.close()
