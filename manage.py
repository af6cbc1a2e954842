#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys
from pathlib import Path


def main() -> None:
    """Run a management command."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tetris_site.settings")
    from django.core.management import execute_from_command_line

    from tetris_site.env import default_data_dir, prepare_data_dir

    # A launcher: the settings only read the data folder, so make sure it is there.
    prepare_data_dir(default_data_dir(Path(__file__).resolve().parent))

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
