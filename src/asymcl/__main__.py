"""`python -m asymcl ...` is the same as the `asymcl` console script."""

from asymcl.cli import main

raise SystemExit(main())
