"""The storytelling report: charts (matplotlib), sentences and one self-contained HTML page."""
