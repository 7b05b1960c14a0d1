"""``python -m syncer`` = ``dnssync``."""

from syncer.cli import main

if __name__ == "__main__":
    main()
