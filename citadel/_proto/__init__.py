"""Generated protobuf and gRPC code. Do not edit; run `make protos`."""
