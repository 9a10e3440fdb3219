#!/usr/bin/env python3
"""Same as ``nst-auth-gate``: the Ingress's bearer-key check."""

import sys

from nst_server.auth_gate import main

if __name__ == "__main__":
    sys.exit(main())
