"""Fixtures shared by every test folder.

``pytest_plugins`` is only honoured in this top-level conftest; plugins listed here are
registered once, so a session-scoped fixture such as ``seaweed`` starts one server for all
folders that use it. The name is ``fixtures.seaweed``, not ``tests.fixtures...``: pytest
puts this folder (which has no __init__.py) on sys.path, the repository root only under
``python -m pytest``; import helpers the same way (``from fixtures.seaweed import S3Server``).
"""

pytest_plugins = ["fixtures.seaweed", "fixtures.platform"]
