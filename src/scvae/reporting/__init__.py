"""Reporting: pictures of results and the self-contained HTML page of a run."""
