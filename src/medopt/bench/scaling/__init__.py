"""Autoscaling: replicas behind a router, controllers (KPA, HPA, SLO-aware), a simulator, the regime map.

The controllers are pure objects fed samples and an injected clock, so the same instance type drives a real run over
``medopt serve`` processes and the discrete-event simulator.
"""
