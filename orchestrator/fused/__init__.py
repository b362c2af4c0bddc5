"""Fused training: K trials of one model and task that differ only in learning rate and seed
train as one stacked model, each member equal to its solo trial (which trials fuse: ``spec.units``).

loop        a fused unit's loop: members, their callbacks, leaving the stack, out-of-memory split
stacked     K BERT classifiers as one model: stacked weights, batched matmuls, shared dropout masks
seeds       members of several seeds: each seed's initial model, batch order and dropout stream; per-member inputs
adamw       AdamW over stacked members: a learning rate and gradient clipping per member
evaluation  every member's dev predictions from one stacked forward per batch, scored as solo
"""
