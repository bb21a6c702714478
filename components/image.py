"""The image the components are declared with (built from serving/Dockerfile's base stage).

A pipeline compiled for a cluster sets each task's image from the config's ``kfp.image`` / ``kfp.gpu_image``;
this default is what kfp.local's subprocess runner ignores.
"""

IMAGE = "ghcr.io/medopt/medopt:0.1.0"
