"""Accounts hosted on this PDS: credentials, sessions, status (spec-account.md)."""
