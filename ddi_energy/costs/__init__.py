"""Stage 5, dynamic-network costs: per-input costs, the differentiable resource loss, budgets."""
