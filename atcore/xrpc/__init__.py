"""XRPC glue shared by every service: errors, server routing, HTTP client, event-stream client."""
