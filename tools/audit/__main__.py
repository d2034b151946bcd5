"""``python -m tools.audit``: run the audit (see :mod:`tools.audit`)."""

from tools.audit._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
