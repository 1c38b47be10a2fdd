"""Code shared by the partner node and the coordinator: wire protocol, identifiers, PKI, audit chain."""

PROTOCOL_VERSION = "kruispunt/1"
