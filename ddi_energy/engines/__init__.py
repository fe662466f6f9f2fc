"""Stage 3, engines: layer shapes to access counts (SCALE-Sim itself, or its exact closed forms)."""
