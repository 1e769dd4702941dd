"""``sslinv fetch-data``: verified, resumable, safe downloads of the datasets and checkpoints.

Modules (none imports torch; ``--list`` and shell completion answer at once):

- ``records``: one declarative record per dataset (URLs with mirrors, file names, sizes,
  checksums, layout steps, licence line, the loader module that checks the result);
- ``download``: HTTP with Range resume, retries with backoff, Google Drive confirmation
  pages, hashes checked before the file gets its name;
- ``verified``: which checksum a file must match (given, published, recorded at first
  download) and ``fetch_file``, the one download function datasets and models use;
- ``extract``: zip/tar extraction with the type read from the bytes and every member
  kept inside the target folder;
- ``layout``: a record's layout steps (strip top folders, pick the files loaders read);
- ``imagenet``: the manual ImageNet path (verify the user's archives, sort val by class);
- ``manifest``: ``--mirror`` / ``SSLINV_MIRROR`` and JSON/TOML manifests of overrides;
- ``install``: ``run(cfg, reporter)``: the whole fetch, staging folder to final name;
- ``errors`` are in ``sslinv.errors`` (exit codes 6-8); progress goes through ``sslinv.reporting.Reporter``.

This package never imports ``sslinv.models``: the model zoo calls ``verified.fetch_file``
(``sslinv.models.load.fetch_weights``) and ``fetch-data --model`` is wired by the CLI.
"""
