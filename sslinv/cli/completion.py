"""Shell completion scripts for ``completions/`` (bash, zsh, fish).

The scripts call back into ``sslinv`` (Typer/Click's ``_SSLINV_COMPLETE`` protocol), so
they stay valid when options change; tests/test_cli.py fails when they are stale.
Regenerate with ``python -m sslinv.cli.completion completions/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

SHELLS = {"bash": "sslinv.bash", "zsh": "_sslinv", "fish": "sslinv.fish"}


def script(shell: str) -> str:
    from typer.completion import get_completion_script

    text = get_completion_script(prog_name="sslinv", complete_var="_SSLINV_COMPLETE", shell=shell)
    return text.rstrip("\n") + "\n"


def write_all(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for shell, name in SHELLS.items():
        (folder / name).write_text(script(shell))


if __name__ == "__main__":
    write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "completions"))
