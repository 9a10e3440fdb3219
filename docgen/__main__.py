"""``python -m docgen``: rewrite every generated document (what ``make docs`` runs)."""

from . import api_tables, openapi

if __name__ == "__main__":
    api_tables.write_tables()
    openapi.write_contract()
