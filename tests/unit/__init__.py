"""Unit tier: code without sockets or servers (tests/unit/conftest.py refuses network sockets)."""
