"""Thin typed KFP components, one per stage; each calls a function in ``medopt.pipeline.steps``."""

from components.compress import compress_component
from components.data import data_component
from components.deploy import deploy_component
from components.evaluate import evaluate_component
from components.federate import federate_component
from components.train import train_component

__all__ = ["compress_component", "data_component", "deploy_component", "evaluate_component", "federate_component", "train_component"]
