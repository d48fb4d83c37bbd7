"""``python -m imm`` is the ``imm`` command."""

from imm.cli.main import app

app()
