"""Merkle Search Tree: node codec, immutable tree operations, walks, diffs, proofs, inversion."""
