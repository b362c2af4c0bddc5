"""Sweep files: strict YAML -> a validated schema -> a resolved ``Sweep`` -> its trials. Pure
(no torch, no Ray).

schema      the sweep file's pydantic models; pydantic errors as ``file:line`` lines
sweep       YAML -> resolved ``Sweep`` (models, tasks, data), grid expansion, shipped sweeps by name
plan        ``glue-sweep plan``: trials and compute from the spec alone
units       which grid trials train as one fused unit (``fuse: auto|off``)
cost        the cost model: a sweep's H100-hours as a range, counting start-ups and per-step host time
resources   parameter counts, memory estimate, GPU share (memory and expected utilisation), peak figures
"""
