"""Process tier: real subprocesses (servers, CLIs, the demo) and the faults only they can have."""
