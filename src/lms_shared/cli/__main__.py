"""``python -m lms_shared.cli``: the same as the ``lms-shared`` script."""

from lms_shared.cli import main

main()
