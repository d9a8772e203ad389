"""A process that has imported ``twinweave.cli`` and forks a child per command: each
child runs the entry point in a process of its own (its own file descriptors, exit code,
environment, working folder) without importing twinweave again.

Starting ``twinweave`` takes 1.5 s here, nearly all of it imports; the command-line tests
start some 240 commands. A forked child differs from an exec'd one only in what was
imported before it started, so ``cli_support.twinweave`` exec's a fresh process whenever
that could matter (another environment than this server's, or other credentials).

Protocol, one JSON line each way: a request ``{"argv0", "args", "cwd", "environment",
"stdout", "stderr"}`` (the last two name files the child writes); the replies
``{"pid"}`` as the child starts and ``{"returncode"}`` as it ends (negative: the signal
that ended it, as in ``subprocess``).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import traceback
from typing import Any

import twinweave.cli


def _run_child(request: dict[str, Any]) -> None:
    """Run one command as the console script would, then exit: never returns."""
    code: int = 1
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["environment"])
        for fd, path, flags in (
            (0, os.devnull, os.O_RDONLY),
            (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
            (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        ):
            opened = os.open(path, flags, 0o600)
            os.dup2(opened, fd)
            os.close(opened)
        sys.argv = [request["argv0"], *request["args"]]
        try:
            twinweave.cli.main()
            code = 0
        except SystemExit as exit_:
            # What the interpreter does with SystemExit's code on the way out.
            if exit_.code is None:
                code = 0
            elif isinstance(exit_.code, int):
                code = exit_.code
            else:
                print(exit_.code, file=sys.stderr)
                code = 1
        except BaseException:  # what an uncaught error does: traceback, code 1
            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
    finally:
        os._exit(code)


def serve() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _run_child(request)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    serve()
