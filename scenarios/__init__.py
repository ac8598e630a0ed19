"""Bundled scenarios (YAML files); this package only makes them installable."""
