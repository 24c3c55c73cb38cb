"""The two-stage training engine: one run = one table cell and seed.

Read `asymcl.engine.run.run` top to bottom: it is the outline. The pieces:

* `spec` -- `RunSpec`, every setting once (flag, default, choices, help); no torch.
* `device` -- the device, autocast and layout, seeding and deterministic kernels.
* `batches` -- the subset folder on the device, index batches, normalised float images.
* `steps` -- one optimiser step unless the loss is NaN/inf, and the NaN accounting.
* `stage1` -- contrastive feature learning (epochs, checkpoint cadence, resume).
* `checkpoints` -- the stage-1 checkpoint file (write atomically, check, restore).
* `stage2` -- frozen-encoder features, the linear head, scoring, embeddings.
* `metrics` -- the metrics.json record.
* `progress` -- the terminal progress bar / per-epoch log lines.

This package's ``__init__`` imports nothing, so ``asymcl.engine.spec`` stays importable
without torch (the workflow helpers and the CLI parser use it).
"""
