"""The ``realtime-tse`` command line (``python -m realtime_tse.cli`` runs it too)."""
