"""Plumbing shared by the recipes: settings, processes, DeepSpeed config, loaders, checkpoints, metrics."""
