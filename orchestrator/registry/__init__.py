"""What can be trained on what: the task and model registries and how to load them. Tasks are
data (``tasks/*.yaml``, shipped as package data); models are rows.

tasks       the task registry over ``tasks/*.yaml``: columns, labels, splits, metrics, benchmark
models      the model registry: the 24 miniatures (generated), MiniLM, compact families
loading     transformers loading of a registry row (tokenizer, model; safetensors, no remote code)
metrics     GLUE metrics (numpy; checked against scikit-learn and scipy)
"""
