"""MoCo v2 pretraining with the paper's augmentation presets (protocols.md section 6).

Modules: ``augment`` (presets ``default``/``ventral``/``dorsal``/``default_w3`` and custom
augmentation lists; torch-free names for completion), ``moco`` (the MoCo v2 module:
encoders, MLP head, queue, shuffled and split batch norm), ``train`` (``run(cfg,
reporter)``: the loop, checkpoints, resumption, export, JSON-lines log).
"""
