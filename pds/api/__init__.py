"""XRPC handlers, one module per NSID namespace."""
