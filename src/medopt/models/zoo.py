"""The registered models: real ImageNet architectures and tiny test variants, side by side.

Swin and MaxViT need the side to be a multiple of 32 (patch 4 and three 2x merges for Swin; stride 32 with the
window derived from side/32 for MaxViT); ViT needs a multiple of its patch size, or timm silently crops the border.
"""

from __future__ import annotations

from medopt.models import efficientnet_lite
from medopt.models.model_spec import MODELS, ModelSpec
from medopt.models.tiny import build_tiny_cnn, build_tiny_resnet, build_tiny_vit

SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("resnet18", "resnet18", "resnet", 224),
    ModelSpec("resnet50", "resnet50", "resnet", 224),
    ModelSpec("vgg16", "vgg16", "vgg", 224),
    ModelSpec("densenet121", "densenet121", "densenet", 224),
    ModelSpec("efficientnet_b0", "efficientnet_b0", "efficientnet", 224),
    ModelSpec(
        "efficientnet_lite0",
        efficientnet_lite.TIMM_NAME,
        "efficientnet",
        efficientnet_lite.INPUT_SIZE,
        weights="package:efficientnet_lite0",
        mean=efficientnet_lite.TF_LITE_MEAN,
        std=efficientnet_lite.TF_LITE_STD,
    ),
    ModelSpec("mobilenetv2_100", "mobilenetv2_100", "mobilenet", 224),
    ModelSpec("convnext_tiny", "convnext_tiny", "convnext", 224),
    ModelSpec("swin_tiny", "swin_tiny_patch4_window7_224", "swin", 224, fixed_input_size=True, input_multiple=32),
    ModelSpec("maxvit_tiny", "maxvit_tiny_tf_224", "maxvit", 224, fixed_input_size=True, input_multiple=32),
    ModelSpec("vit_small", "vit_small_patch16_224", "vit", 224, fixed_input_size=True, input_multiple=16),
    ModelSpec("tiny_cnn", None, "tiny", 32, builder=build_tiny_cnn),
    ModelSpec("tiny_resnet", None, "resnet", 32, builder=build_tiny_resnet),
    ModelSpec("tiny_vit", None, "vit", 32, fixed_input_size=True, input_multiple=4, builder=build_tiny_vit),
)

TINY_MODELS = ("tiny_cnn", "tiny_resnet", "tiny_vit")

for _spec in SPECS:
    MODELS.add(_spec.name, _spec)
