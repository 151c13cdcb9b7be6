"""The tests' tiny run as a config file, for the command-line tests (`--config=tests/tiny_config.py`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from test_trainer import tiny_config


def get_config():
    return tiny_config()
