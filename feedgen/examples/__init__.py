"""Example feeds: `skyloft feedgen serve feedgen.examples.hashtag` (or `.follows_liked`)."""
