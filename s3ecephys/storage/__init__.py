"""Storage layer: where the dataset lives, and bytes from it."""
