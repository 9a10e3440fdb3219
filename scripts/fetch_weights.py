#!/usr/bin/env python3
"""Same as ``nst-fetch-weights``: download and convert the official VGG19 weights."""

import sys

from nst.fetch_weights import main

if __name__ == "__main__":
    sys.exit(main())
