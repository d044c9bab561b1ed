"""Skyloft relay: crawls PDS firehoses, verifies every commit, serves one firehose."""
