"""The networks of the model zoo: small torch modules for the embedded data sets."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CancerMLP", "DigitsCNN", "WideDigitsCNN"]


class DigitsCNN(nn.Module):
    """A small CNN for 1x8x8 digit images: two 3x3 convolutions (16, 32), max-pool, linear.

    Takes *normalised* images of shape ``(n, 1, 8, 8)`` and returns logits ``(n, 10)``.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(32 * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of normalised images."""
        return self.classifier(self.features(x).flatten(1))  # type: ignore[no-any-return]


class WideDigitsCNN(nn.Module):
    """A wider CNN for 1x32x32 digit images: three blocks of 3x3 convolution, ReLU and 2x2
    max-pool (32, 64, 64 channels), then a linear layer.

    Takes *normalised* images of shape ``(n, 1, 32, 32)`` and returns logits ``(n, 10)``.
    About 24 times the multiply-adds of `DigitsCNN` per image, so attack benchmarks on it
    measure the network's cost rather than a library's per-step overhead.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(64 * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of normalised images."""
        return self.classifier(self.features(x).flatten(1))  # type: ignore[no-any-return]


class CancerMLP(nn.Module):
    """A two-hidden-layer MLP (64, 32 units, ReLU) for tabular data such as breast cancer.

    Takes *standardised* features of shape ``(n, in_features)`` and returns logits
    ``(n, num_classes)``.
    """

    def __init__(self, in_features: int = 30, num_classes: int = 2) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, 64),
            nn.ReLU(),
            nn.Linear(64, 32),
            nn.ReLU(),
            nn.Linear(32, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of standardised feature vectors."""
        return self.net(x)  # type: ignore[no-any-return]
