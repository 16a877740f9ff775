"""colending.v1: generated bindings; regenerate with scripts/generate_protos.py."""
