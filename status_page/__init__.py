"""Public pages of statusd: the status page, incident pages and the Statuspage-compatible read API."""

from status_page.views import StatusPage

__all__ = ["StatusPage"]
