"""Reproductions of the Clockwork RNN paper's experiments with cwrnn_ext.

`python -m experiments.sequence_generation --help` (experiment 1, sequence generation),
`python -m experiments.spoken_words --help` (experiment 2, spoken words); results in RESULTS.md.
"""
