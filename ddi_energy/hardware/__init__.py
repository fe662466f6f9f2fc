"""Stage 1, the accelerator: hardware configs, per-access energies and Eq. 6 by memory level."""
