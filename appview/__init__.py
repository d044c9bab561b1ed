"""The appview: indexes app.bsky.* from the relay's firehose and serves the app.bsky read API."""
