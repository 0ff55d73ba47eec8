import sys

from lightning_aapt.cli import main
from lightning_aapt.cli.lightning import ConfigError

if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConfigError as err:  # a refused value: its key and the reason, not a traceback
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
