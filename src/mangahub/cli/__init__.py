"""The ``mangahub`` command line."""
