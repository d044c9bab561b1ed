"""Per-account repository storage: one SQLite file per DID (the reference PDS's actor store)."""

from pds.actor_store.stores import ActorStores, RepoMissing

__all__ = ["ActorStores", "RepoMissing"]
