#!/usr/bin/env python3
"""Same as ``nst-client``: send a content and style image to the server."""

import sys

from nst_client.cli import main

if __name__ == "__main__":
    sys.exit(main())
