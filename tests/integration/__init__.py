"""Integration tier: real gRPC servers with real mTLS on loopback, in this process."""
