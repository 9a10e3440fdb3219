"""Documents generated from the code's declarations (``make docs``): the parameter and preset
tables of docs/api.md and the OpenAPI contract docs/openapi.yaml.

A development tool of the checkout: it reads and writes files of the repository, so it is
neither installed with the package nor shipped in the model archive. Tests check that the
committed documents are the ones generated here.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
