import sys

from lightning_aapt.cli import run

if __name__ == "__main__":
    sys.exit(run())
