"""Training: TOML configs, MMFR training samples, the accelerate trainer, atomic checkpoints."""
