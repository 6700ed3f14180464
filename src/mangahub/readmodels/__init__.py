"""Read models: what every door reads most, kept ready to send, per process.

See :mod:`mangahub.readmodels.catalog` for the catalog's (series details, search
pages, the genre list) and the ``catalog.changed`` event every catalog writer publishes.
"""

from mangahub.readmodels.catalog import (
    CATALOG_CHANGED,
    CatalogReadModel,
    catalog_changed,
    publish_catalog_changed,
)

__all__ = ["CATALOG_CHANGED", "CatalogReadModel", "catalog_changed", "publish_catalog_changed"]
