"""The machinery behind the operator specs: records, case drawing, references' baselines, checks, budgets, kernels, targets and exit codes."""
