"""Developer tools run from the checkout: gRPC code generation, the end of `make demo`, the Spark smoke test."""
