"""MoCo v2 pretraining with the paper's augmentation presets (protocols.md section 6).

Modules, from the bottom up: ``augment`` (presets ``default``/``ventral``/``dorsal``/
``default_w3`` and custom augmentation lists; torch-free names for completion), ``moco``
(the MoCo v2 module: encoders, MLP head, queue, shuffled and split batch norm),
``config`` (the run's config, its checks, the learning-rate schedule), ``data`` (the
image pool, two seeded views per image, the run's batches), ``state`` (plan, checkpoint,
RNG states, export, JSON-lines log) and ``loop`` (``run(cfg, reporter)``: an outer loop
over epochs around ``train_one_epoch``).
"""
