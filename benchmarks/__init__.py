"""Speed benchmark of cwrnn_ext: `python -m benchmarks --help`."""
