"""The networks: the model zoo that profiling walks, and its gated (MGL2S, early-exit) versions."""
