"""Stage 2, layer workloads: layer shapes, the gate annotations models carry, the layer walker."""
