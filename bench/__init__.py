"""Pushbox's benchmarks: each figure beside a baseline measured in the same run.

`make bench` runs them all against the `make up` stack; `python -m bench.<name>` runs
one. See bench/README.md."""
