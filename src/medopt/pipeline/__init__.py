"""Glue between the stage functions and their callers: KFP components, kfp.local runs, in-process runs."""
