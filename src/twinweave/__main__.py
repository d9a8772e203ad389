"""``python -m twinweave``: the ``twinweave`` command, for where its script is not on PATH."""

from twinweave.cli import main

main()
