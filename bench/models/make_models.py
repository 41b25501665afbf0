"""Scripts the benchmark's models with the project's torch (scripts/torch-env).

Random weights, nothing downloaded. Without torchvision (the project's environment has torch
alone), resnet18 is built from the same layers defined below. Writes <name>.pt (TorchScript) and models.txt, one line per
model: name, file, per-item input shape, per-item output shape, batch sizes to try for the
limit, and the p99 latency bound (ms) of the server scenario.

    $MAAS_TORCH_PYTHON bench/models/make_models.py OUT_DIR
"""
import os
import sys

import torch

try:
    import torchvision
except ImportError:
    torchvision = None


class BasicBlock(torch.nn.Module):
    """torchvision's ResNet BasicBlock: two 3x3 convolutions and a shortcut."""

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(planes)
        self.conv2 = torch.nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(planes)
        self.relu = torch.nn.ReLU(inplace=True)
        self.downsample = torch.nn.Identity()
        if stride != 1 or inplanes != planes:
            self.downsample = torch.nn.Sequential(
                torch.nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                torch.nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


def resnet18(num_classes):
    """ResNet-18 as torchvision builds it (the same layers, shapes and parameter count)."""
    if torchvision is not None and not os.environ.get("MAAS_NO_TORCHVISION"):
        return torchvision.models.resnet18(num_classes=num_classes)
    layers = [torch.nn.Conv2d(3, 64, 7, 2, 3, bias=False), torch.nn.BatchNorm2d(64),
              torch.nn.ReLU(inplace=True), torch.nn.MaxPool2d(3, 2, 1)]
    inplanes = 64
    for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes, 1)]
        inplanes = planes
    layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
               torch.nn.Linear(512, num_classes)]
    return torch.nn.Sequential(*layers)


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    models = []

    mlp = torch.nn.Sequential(
        torch.nn.Linear(512, 1024), torch.nn.ReLU(),
        torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
        torch.nn.Linear(1024, 10)).eval()
    models.append(("mlp", torch.jit.script(mlp), [512], [10], "16,32,64,128", 10))

    # resnet18 on 64x64 images: the real architecture, small inputs to stay fast on 2 cores.
    resnet = resnet18(num_classes=1000).eval()
    models.append(("resnet18", torch.jit.script(resnet), [3, 64, 64], [1000], "1,2,4,8,16", 100))

    layer = torch.nn.TransformerEncoderLayer(256, 4, 1024, batch_first=True)
    encoder = torch.nn.TransformerEncoder(layer, 4).eval()
    models.append(("transformer", torch.jit.script(encoder), [64, 256], [64, 256], "1,2,4,8,16",
                   100))

    with open(os.path.join(out, "models.txt"), "w") as index:
        for name, module, in_shape, out_shape, batches, bound_ms in models:
            path = os.path.join(out, name + ".pt")
            module.save(path)
            index.write("%s %s %s %s %s %d\n" % (
                name, path, ",".join(map(str, in_shape)), ",".join(map(str, out_shape)),
                batches, bound_ms))
            print("scripted", name, "->", path)


if __name__ == "__main__":
    main(sys.argv[1])
