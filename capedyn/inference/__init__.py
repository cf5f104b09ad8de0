"""Bayesian inference with NumPyro, apart from the models it samples: the NumPyro model
functions (``models``), sampling and a new family's posterior (``sampling``), the
posterior result and its storage (``result``), the ODE-implied critical scale from
posterior draws (``implied_nc``) and the calibration checks, each named for what it
calibrates (``coupling_calibration``, ``implied_nc_calibration``).

May import: ``capedyn.models``, ``capedyn.dynamics``, ``capedyn.coupling``,
``capedyn.data`` and the private helpers.
"""
