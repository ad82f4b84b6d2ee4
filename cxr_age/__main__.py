"""`python -m cxr_age ...`: the commands under one entry point (`cxr_age.cli.main`)."""

from cxr_age.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
