"""Feature plug-ins shipped with numerflow (entry-point group ``numerflow.features``; docs/features.md)."""
