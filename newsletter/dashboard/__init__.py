"""The operator's dashboard, the admin's first page: aggregate queries (metrics.py), the cache
of closed days (rollups.py), server-drawn SVG charts (charts.py) and the page itself
(page.py), shown by newsletter/admin_site.py."""
