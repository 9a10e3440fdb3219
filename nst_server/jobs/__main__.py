"""``python -m nst_server.jobs``: the same as ``nst-jobs``."""

from .service import main

main()
