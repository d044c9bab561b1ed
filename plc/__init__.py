"""The did:plc directory service: stores, validates and serves signed PLC operation logs."""
