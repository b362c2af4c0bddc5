"""One trial on one device (torch, transformers; no Ray): prepare, train, evaluate per epoch,
predict.

runner      prepare / run / predict one trial; out-of-memory restart
batches     a capped trial's rows, one epoch's batch order, bucket widths, rows on the device
step        one training step without host syncs: device lr schedule, solo step, compiled steps
device      precision (bf16 / fp16 + GradScaler / fp32), OOM recognition and clean-up
distill     a student's transfer set with the teacher's soft labels, the loss, the stages
teacher     the distillation teacher: known by content, re-trained from a run's best configuration
            (``results.best``), its predictions of the transfer set
speed       inference speed of models (the compact table's speed-up)
"""
