"""Stage 4, cost tables: rows per layer and channel count, Eq. 6 energy, files, sweeps, checks."""
