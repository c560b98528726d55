"""The local dashboard: the QuickSight views, from the same data, as one self-contained HTML page."""
