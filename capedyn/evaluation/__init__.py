"""How well the methods predict what they did not see: family splits and the error
metrics (``splits``), nested leave-one-family-out selection of hyper-parameters
(``selection``), the held-out-family benchmark P1/P2 (``heldout``), the tracker of the
authors' falsifiable predictions (``predictions``) and the JAX-against-SciPy benchmark
(``bench``).

May import: every package below it (``inference``, ``models``, ``dynamics``,
``coupling``, ``data``) and the private helpers.
"""
