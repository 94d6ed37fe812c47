"""``python -m tastebud.cli``."""

from tastebud.cli import main

main()
