"""The skeleton every evaluation command shares: its shared options and its last steps.

``@evaluation_command()`` gives a command the options of ``options.shared_options``
(``--model`` first, then the command's own, then feature layer, architecture, fusion, force, JSON,
verbose, cache and data roots, skip-bad, device, precision, batch size, workers and the
torchrun options), relaunches under torchrun when asked, turns errors into one line, calls the command
with a ``sslinv.evaluate.common.Runtime`` built from those options, and leaves the
process group at the end.
The command then builds its config and hands it to ``emit``, which runs it with progress
bars and renders the results. Nothing here imports torch.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import typer

from sslinv.cli import options as o
from sslinv.cli.output import handle_errors, print_json, progress_reporter

#: The shared options that are not settings of the run.
_CLI_ONLY = ("json_", "verbose", "refresh_cache", "nproc_per_node", "nnodes", "node_rank", "rdzv_endpoint")


def evaluation_command(skip_bad: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate ``fn(rt, json_, **own_options)``: a Typer command with the shared options."""
    shared = inspect.signature(o.shared_options, eval_str=True).parameters
    names = [n for n in shared if skip_bad or n != "skip_bad"]

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = list(inspect.signature(fn, eval_str=True).parameters.values())[2:]  # after (rt, json_)

        @handle_errors()
        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            from sslinv.launch import LaunchOptions, relaunch

            values = {n: kwargs.pop(n) for n in names}
            launch = LaunchOptions(values["nproc_per_node"], values["nnodes"], values["node_rank"],
                                   values["rdzv_endpoint"])
            if launch.wants_relaunch:
                raise typer.Exit(relaunch(launch))
            from sslinv.cache import refreshing

            settings = {k: v for k, v in values.items() if k not in _CLI_ONLY}
            settings["force"] = values["force"] or values["refresh_cache"]  # --refresh-cache implies --force
            from sslinv import distributed

            rt = runtime(**settings)
            try:
                with refreshing(values["refresh_cache"]):  # statistics and features recomputed too
                    return fn(rt, values["json_"], **kwargs)
            finally:  # leave the process group joined in evaluate.common.start (torchrun only)
                distributed.shutdown(distributed.world_from_env())

        params = [shared["model"], *own, *(shared[n] for n in names if n != "model")]
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        del command.__wrapped__  # Typer reads the signature above, not fn's
        return command

    return deco


def runtime(model: str, feature_layer: str, arch: str | None, fuse: o.Fuse, force: bool, cache_dir, data_root, device: str | None,
            precision: o.Precision, batch_size: int | None, workers: int | None, skip_bad: bool = False):
    """The run's ``Runtime`` from the shared options (cache root checked writable, data
    root resolved)."""
    from sslinv import paths
    from sslinv.evaluate.common import Runtime

    cache = o.cache_root(cache_dir)
    return Runtime(
        model=model,
        cache_dir=cache,
        data_root=paths.data_root(data_root, cache),
        layer=feature_layer,
        arch=arch,
        fuse=fuse.value,
        device=device,
        precision=precision.value,
        batch_size=batch_size,
        workers=workers,
        skip_bad=skip_bad,
        force=force,
    )


def check_crop(resize: int, crop: int, resize_option: str = "--resize", crop_option: str = "--crop-size") -> None:
    from sslinv.errors import UsageError

    if crop > resize:
        raise UsageError(f"{crop_option} ({crop}) cannot exceed {resize_option} ({resize}).")


def emit(command: str, run: Callable, cfg: Any, json_: bool, payload: Callable[[list], dict[str, Any]],
         table: Callable[[str, list], None]) -> None:
    """Run ``cfg`` with progress bars; print the results as JSON (``payload`` adds the
    command's own fields) or as the command's table. Ranks other than 0 print nothing."""
    with progress_reporter() as reporter:
        results = run(cfg, reporter)
    if not results:  # ranks other than 0
        return
    model = cfg.runtime.model
    if json_:
        print_json({
            "command": command,
            "model": model,
            "model_identity": results[0].record.get("model"),
            **payload(results),
            "results": [r.summary() for r in results],
        })
        return
    table(model, results)
