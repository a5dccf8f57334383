"""The pieces the recipes are built from, each unit-tested on its own: token cache, models, RL math."""
