"""Identity: did:plc operations and logs, DID documents, DID and handle resolution."""
