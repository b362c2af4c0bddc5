"""Benchmarks for glue-sweep (not part of the installed package). Results go to bench/out/."""
