"""HDF5 layer: a one-pass file index, a range planner and lazy arrays."""
