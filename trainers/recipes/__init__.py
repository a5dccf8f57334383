"""One file per training phase, read top to bottom; no trainer class hierarchy."""
