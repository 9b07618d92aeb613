"""One module per CLI verb: `register(parser)` and `run(args) -> int`."""
