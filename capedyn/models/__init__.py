"""Every estimator of the held-out benchmark, one per file and named after its registry
name: ``coupling_ode`` (the learned coupling ODE, :class:`CouplingODE`), ``shared_ode``
(the shared-logit ODE, :class:`SharedLogitODE`), ``sindy`` (sparse discovery),
``baselines`` (the papers' linear ODE and polynomials), ``peers`` (the field's peer
methods); saving and loading fitted models (``persistence``) and the per-phase analysis
of a fitted ODE (``per_phase``).

May import: ``capedyn.dynamics``, ``capedyn.data`` and the private helpers.
"""
