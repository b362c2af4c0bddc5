"""One trial on one device (torch, transformers; no Ray): prepare, train, evaluate per epoch,
predict.

runner      prepare / run one trial; out-of-memory restart
predict     a prepared trial's outputs per row on a split, predictions, dev scores
test_outputs the test outputs of a trial's best (and last) evaluation's weights, kept on the host
batches     a capped trial's rows, one epoch's batch order, bucket widths, rows on the device
step        one training step without host syncs: device lr schedule, solo step, compiled steps
device      precision (bf16 / fp16 + GradScaler / fp32), OOM recognition and clean-up
distill     a student's transfer set with the teacher's soft labels, the loss, the stages
teacher     the distillation teacher: known by content, re-trained from a run's best configuration
            (``results.best``), its predictions of the transfer set
speed       inference speed of models (the compact table's speed-up)
"""
