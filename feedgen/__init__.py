"""A feed-generator SDK: a feed is one module (feedgen.sdk); the SDK runs the rest."""
