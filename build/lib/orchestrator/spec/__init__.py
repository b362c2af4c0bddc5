"""Sweep files: strict YAML -> a validated schema -> a resolved ``Sweep`` -> its trials. Pure
(no torch, no Ray).

schema      the sweep file's pydantic models; pydantic errors as ``file:line`` lines
sweep       YAML -> resolved ``Sweep`` (models, tasks, data), grid expansion, shipped sweeps by name
plan        ``glue-sweep plan``: trials and compute from the spec alone
resources   parameter counts, memory estimate, GPU share, peak figures
"""
