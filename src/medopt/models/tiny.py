"""Tiny networks registered like the real ones, so every test can run the full model path in milliseconds.

``TinyCNN`` is our own module with timm's interface (``forward_features``, ``get_classifier``,
``reset_classifier``); ``tiny_resnet`` and ``tiny_vit`` are real timm classes at toy widths, so the ResNet stem
rules, the ViT size rules and the block-wise transfer modes are exercised on the same code paths as the big models.
"""

from __future__ import annotations

import torch
from timm.models.resnet import BasicBlock, ResNet
from timm.models.vision_transformer import VisionTransformer
from torch import nn

TINY_CNN_WIDTHS = (8, 16, 32, 64)


def _conv_bn_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TinyCNN(nn.Module):
    """A stem and three stride-2 conv blocks (about 25k parameters) with a timm-like interface.

    Modules are registered in forward order (stem, blocks, head) because the transfer modes rely on it.
    """

    def __init__(self, in_chans: int = 3, num_classes: int = 2, drop_rate: float = 0.0) -> None:
        super().__init__()
        stem_w, *block_ws = TINY_CNN_WIDTHS
        self.pretrained_cfg = {"first_conv": "stem.0", "classifier": "head"}
        self.stem = _conv_bn_relu(in_chans, stem_w, stride=1)
        widths = [stem_w, *block_ws]
        self.blocks = nn.Sequential(*[_conv_bn_relu(widths[i], widths[i + 1], 2) for i in range(len(block_ws))])
        self.num_features = widths[-1]
        self.num_classes = num_classes
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(drop_rate)
        self.head: nn.Module = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map before pooling, shape (B, num_features, H/8, W/8)."""
        return self.blocks(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, dropout and classify; ``pre_logits`` returns the pooled features (as timm does)."""
        x = self.head_drop(torch.flatten(self.global_pool(x), 1))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        """The classifier layer, as timm models expose it (used by the feature-extract transfer mode)."""
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier for ``num_classes`` outputs (0 removes it); ``global_pool`` must stay avg."""
        if global_pool not in (None, "avg"):
            raise ValueError(f"TinyCNN supports only global_pool='avg', got {global_pool!r}")
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()


def build_tiny_cnn(*, in_chans: int, num_classes: int, drop_rate: float) -> nn.Module:
    """Registry builder for ``tiny_cnn``."""
    return TinyCNN(in_chans=in_chans, num_classes=num_classes, drop_rate=drop_rate)


def build_tiny_resnet(*, in_chans: int, num_classes: int, drop_rate: float) -> nn.Module:
    """Registry builder for ``tiny_resnet``: timm ResNet, BasicBlock x [1,1,1,1], widths 8-64 (about 90k params)."""
    return ResNet(
        BasicBlock,
        [1, 1, 1, 1],
        channels=(8, 16, 32, 64),
        in_chans=in_chans,
        num_classes=num_classes,
        drop_rate=drop_rate,
    )


def build_tiny_vit(*, in_chans: int, num_classes: int, drop_rate: float, img_size: int) -> nn.Module:
    """Registry builder for ``tiny_vit``: timm VisionTransformer, patch 4, width 32, depth 2 (about 20k params)."""
    return VisionTransformer(
        img_size=img_size,
        patch_size=4,
        in_chans=in_chans,
        num_classes=num_classes,
        embed_dim=32,
        depth=2,
        num_heads=2,
        mlp_ratio=2.0,
        drop_rate=drop_rate,
    )
