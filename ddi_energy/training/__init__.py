"""Stage 6, training: data, run configs, the DDI schedule, checkpoints, evaluation."""
