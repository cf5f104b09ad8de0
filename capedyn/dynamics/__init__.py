"""The differentiable machinery of the coupling ODE, with no estimator in it: the bounded
state (a logit of the above-chance fraction of each score), the coupling vector field
and its Diffrax solve, trajectories of observed families, the least-squares objective
and the optimisers (Levenberg–Marquardt on the Jacobian matrix, Adam with Optax).

May import: ``capedyn.data`` and the private helpers.
"""
