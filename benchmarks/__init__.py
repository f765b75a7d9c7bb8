"""Benchmarks of s3ecephys against the usual ways of reading HDF5 on S3 (not part of the package).

``python -m benchmarks.run --help`` runs them; ``benchmarks/README.md`` says what they measure.
"""
