"""The interactive explorer (``capedyn explore``): a Streamlit app over the fitted coupling
ODE and the shipped data. :mod:`capedyn.explore.core` holds the view model (plain Python,
testable without a browser); ``app.py`` is the Streamlit script; ``figures.py`` the Plotly
figures. Needs the optional extra: ``pip install "capedyn[app]"``."""

from pathlib import Path

APP_PATH = Path(__file__).with_name("app.py")
"""The Streamlit script run by ``capedyn explore``."""
