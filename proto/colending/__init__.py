"""Generated Python bindings of the co-lending gateway contract (see proto/colending/v1)."""
