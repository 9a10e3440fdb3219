#!/usr/bin/env python3
"""Same as ``nst-build-mar``: build model_store/style_transfer.mar."""

import sys

from nst_server.mar import main

if __name__ == "__main__":
    sys.exit(main())
