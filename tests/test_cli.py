"""The command line: help without torch, completions, and shared plumbing."""

import platform
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from sslinv.cli import completion
from sslinv.cli.options import TRANSFORM_NAMES, complete_model, complete_transform

REPO = Path(__file__).resolve().parents[1]


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from sslinv.cli.main import app\n"
        "for argv in (['--help'], ['synthetic', '--help']):\n"
        "    try:\n"
        "        app(argv, prog_name='sslinv')\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, e.code\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_completion_scripts_are_current():
    for shell, name in completion.SHELLS.items():
        path = REPO / "completions" / name
        assert path.read_text() == completion.script(shell), (
            f"{path} is stale: run python -m sslinv.cli.completion completions/"
        )


def test_transform_names_match_registry():
    from sslinv.transforms import FAMILIES

    assert tuple(FAMILIES.names()) == TRANSFORM_NAMES
    assert complete_transform("") == ["all", *FAMILIES.names()]  # completion lists the registry


def test_completion_callbacks():
    assert complete_transform("gr") == ["grayscale"]
    assert "all" in complete_transform("")
    assert complete_model("ven") == ["ventral"]
    assert complete_model("default+dor") == ["default+dorsal"]


def test_shell_completion_protocol_lists_values():
    env = {"_SSLINV_COMPLETE": "complete_bash", "COMP_WORDS": "sslinv synthetic --transform sat", "COMP_CWORD": "3"}
    import os

    out = subprocess.run(["sslinv"], env={**os.environ, **env}, capture_output=True, text=True)
    assert out.stdout.split() == ["saturation"]


def test_an_aborted_command_is_one_line_and_exit_1():
    """typer.Abort (e.g. a declined prompt) ends in one line, not an AttributeError."""
    from typer.testing import CliRunner

    from sslinv.cli.main import SslinvGroup

    tiny = typer.Typer(cls=SslinvGroup)

    @tiny.command()
    def stop() -> None:
        raise typer.Abort()

    @tiny.command()
    def other() -> None:
        pass

    result = CliRunner().invoke(tiny, ["stop"])
    assert result.exit_code == 1
    assert "aborted" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("code, status, err", [(3, 3, ""), (None, 0, ""), ("stopped", 1, "stopped")])
def test_exit_after_torch_runs_handlers_and_flushes(code, status, err):
    """The CLI leaves without the interpreter's teardown once torch is loaded (about
    0.4 s): still with SystemExit's status, buffered output, exit handlers and other
    threads finished."""
    script = (
        "import atexit, sys, threading, time, torch\n"
        "from sslinv.cli.main import _exit\n"
        "atexit.register(lambda: print('handler ran'))\n"
        "threading.Thread(target=lambda: (time.sleep(0.2), print('thread done'))).start()\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "pool = ThreadPoolExecutor(2); pool.submit(time.sleep, 0.1)  # left open, as after an error\n"
        "sys.stdout.write('buffered ')\n"
        f"_exit({code!r})\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == status
    assert out.stdout.split() == ["buffered", "thread", "done", "handler", "ran"]
    assert out.stderr.strip() == err


def test_malloc_keeps_freed_memory_unless_the_user_tunes_it():
    """On glibc the CLI keeps freed blocks for reuse (fewer page faults in CPU forward
    passes); a user's own malloc settings are left alone."""
    from sslinv.cli.main import keep_freed_memory

    assert keep_freed_memory({"MALLOC_ARENA_MAX": "2"}) is False
    assert keep_freed_memory({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}) is False
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert keep_freed_memory({}) is True
