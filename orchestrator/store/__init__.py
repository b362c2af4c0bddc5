"""The result store: one record per trial, written whole and atomically, on a local disk or
any ``pyarrow.fs`` storage. Pure of torch and Ray.

records     result records: schema, atomic writes, validated reads; the run's data source
outputs     each dev evaluation's outputs per row (float16), beside the record
location    ``Location``: a local path or a ``pyarrow.fs`` URI; whole-file writes, listing
identity    a trial's settings hash (configuration, data digest, soft-label key, recipe), reuse check
"""
