#!/usr/bin/env python3
"""Same as ``nst-server``: start or stop a local TorchServe serving style_transfer."""

import sys

from nst_server.control import main

if __name__ == "__main__":
    sys.exit(main())
