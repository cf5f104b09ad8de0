"""Command groups of the ``capedyn`` CLI, one module each (see ``capedyn.cli``)."""
