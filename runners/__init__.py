"""Runners: an instrumented expert-offloading MoE engine and the profiler front door.

``python -m runners.profile PRESET`` runs :mod:`runners.engine` under Nsight
Systems, exports SQLite and runs ``nsysparse report`` on it. ``python -m
runners.engine PRESET`` runs the engine alone. Both take the same engine
options (:mod:`runners.engine.options`).
"""
