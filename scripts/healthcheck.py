#!/usr/bin/env python3
"""Same as ``nst-healthcheck``: container and pod probes (live, ready, drain)."""

import sys

from nst_server.healthcheck import main

if __name__ == "__main__":
    sys.exit(main())
