"""Training: recipes as data, presets, losses, soft labels, the trainer, the CO monitor, DDP."""
