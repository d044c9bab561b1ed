"""The personal data server: accounts, signed repositories, blobs and the firehose."""
