"""The relay's HTTP surface: com.atproto.sync methods, admin routes, status page and metrics."""
