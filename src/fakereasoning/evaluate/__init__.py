"""The evaluation protocol: per-set detection and reasoning metrics, perturbations, reports."""
