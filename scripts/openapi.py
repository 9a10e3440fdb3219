#!/usr/bin/env python3
"""Rewrite docs/openapi.yaml from the parameters and model-config.yaml (``make docs``)."""

import sys

from handler.openapi import write_contract

if __name__ == "__main__":
    write_contract()
    sys.exit(0)
