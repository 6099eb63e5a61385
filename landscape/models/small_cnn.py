"""``small-cnn``: the four-conv, two-dense network used for MNIST-scale robustness work.

conv(32)-conv(32)-pool-conv(64)-conv(64)-pool-fc(200)-fc(200)-fc(classes), 3x3 kernels with padding 1,
so it takes any input size (28x28 gives 7x7 maps before the dense layers). ``batchnorm=True`` adds a
BatchNorm after every convolution (used by tests that need BatchNorm in the Hessian).
"""

from __future__ import annotations

from torch import nn

from .common import Normalize, activation


class SmallCNN(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 mean=None, std=None, width: int = 32, hidden: int = 200, batchnorm: bool = False,
                 act: str = "relu"):
        super().__init__()
        self.normalize = Normalize(mean, std, in_channels)

        def block(cin, cout):
            layers = [nn.Conv2d(cin, cout, 3, padding=1)]
            if batchnorm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(activation(act))
            return layers

        w = width
        self.features = nn.Sequential(*block(in_channels, w), *block(w, w), nn.MaxPool2d(2),
                                      *block(w, 2 * w), *block(2 * w, 2 * w), nn.MaxPool2d(2))
        side = image_size // 4
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * side * side, hidden), activation(act),
                                        nn.Linear(hidden, hidden), activation(act), nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.classifier(self.features(self.normalize(x)))
