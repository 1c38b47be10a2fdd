"""Code both the partner node and the coordinator need: wire protocol, identifiers, PKI, audit."""

PROTOCOL_VERSION = "kruispunt/1"
