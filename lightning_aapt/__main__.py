import sys

from lightning_aapt.cli import main

if __name__ == "__main__":
    sys.exit(main())
