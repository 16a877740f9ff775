"""colending.v1: generated protobuf and gRPC bindings. Regenerate with scripts/generate_protos.py."""
