"""The four evaluations side by side, one module per command, and what they share.

- ``synthetic``, ``realworld``, ``causal3dident``, ``downstream``: one ``run(cfg,
  reporter)`` each, named after its command (protocol sections 2 to 5);
- ``common``: the runtime settings every command shares, the JSON dump of a config,
  the reuse of finished results and the result-record plumbing;
- ``features``: feature extraction (the model call, the datasets of uint8 views, the
  feature cache);
- ``stats``: feature statistics and whitening (protocol section 1), and the cached
  statistics of a pool.
"""
