"""The gRPC transport: servicer, interceptors, health, auth, server and worker processes, generated protos."""
