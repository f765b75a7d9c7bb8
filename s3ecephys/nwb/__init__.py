"""NWB layer: the Allen NWB layout read through the HDF5 index."""
