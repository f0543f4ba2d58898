"""``python -m toolforge_admin``."""

from toolforge_admin.cli import main

main()
