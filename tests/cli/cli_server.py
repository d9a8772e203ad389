"""A process that has imported ``twinweave.cli`` and forks a child per command: each
child runs the entry point in a process of its own (its own file descriptors, exit code
and working folder) without importing twinweave again.

Starting ``twinweave`` takes 1.5 s here, nearly all of it imports; the command-line tests
start some 240 commands. A child differs from the console script started anew in what
happened before the fork: warnings raised by the imports went to this server's log, not
the command's stderr; the consoles that ``twinweave.cli`` builds at import looked at this
server's stderr (a file, as a command's is here); the environment is this server's
(``cli_support`` starts one anew for a command that needs another). The child leaves by
the interpreter's own exit (its exit code, excepthook, atexit handlers and flushing).

Protocol, one JSON line each way: a request ``{"argv0", "args", "cwd", "stdout",
"stderr"}`` (the last two name files the child writes); the replies ``{"pid"}`` as the
child starts and ``{"returncode"}`` as it ends (negative: the signal that ended it, as in
``subprocess``).
"""

from __future__ import annotations

import gc
import json
import os
import sys
from typing import Any, NoReturn

import twinweave.cli


def _run_child(request: dict[str, Any]) -> NoReturn:
    """Run one command as the console script would; its exit ends the process."""
    for fd, path, flags in (
        (0, os.devnull, os.O_RDONLY),
        (1, request["stdout"], os.O_WRONLY | os.O_TRUNC),
        (2, request["stderr"], os.O_WRONLY | os.O_TRUNC),
    ):
        opened = os.open(path, flags)
        os.dup2(opened, fd)
        os.close(opened)
    os.chdir(request["cwd"])
    sys.argv = [request["argv0"], *request["args"]]
    twinweave.cli.main()
    sys.exit(0)


def serve() -> None:
    # The imports' objects out of the collector's sight: a child's collections would
    # otherwise write to every page they share with the server (0.2 s a command).
    gc.freeze()
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            # Whatever the command raises leaves through the interpreter, as it would.
            _run_child(request)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    serve()
