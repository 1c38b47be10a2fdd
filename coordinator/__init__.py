"""The Kruispunt coordinator: registry, purposes, round orchestration, tally and audit log."""
