"""Generated protobuf and gRPC modules for wire protocol v1 (make proto)."""
