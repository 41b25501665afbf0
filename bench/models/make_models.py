"""Scripts the benchmark's models with the project's torch (scripts/torch-env).

Random weights, nothing downloaded. Without torchvision (the project's environment has torch
alone), resnet18 is built from the same layers defined below. Writes, for each model, the
same weights both ways: <name>.pt (TorchScript) and <name>.pt2 (an AOTInductor package of its
torch.export program, batch dimension dynamic from 1 to 1024; each compiles C++, seconds to
minutes), and models.txt, one line per model: name, TorchScript file, per-item input shape,
per-item output shape, batch sizes to try for the limit, the p99 latency bound (ms) of the
server scenario, and the package (absent when the export failed: the reason is printed).

    $MAAS_TORCH_PYTHON bench/models/make_models.py OUT_DIR [--models mlp,resnet18] [--device cuda:0]

--device: the device the packages are compiled for (a package runs on that kind of device only;
the TorchScript files load anywhere). Default: the CPU.
"""
import copy
import os
import sys
import warnings

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


def export_package(module, in_shape, path, device):
    """Exports `module` with a dynamic batch dimension and compiles it for `device` into an
    AOTInductor package at `path`; returns the path, or None (with the reason printed) when it
    fails."""
    module = copy.deepcopy(module).to(device)
    example = torch.randn([2] + in_shape, device=device)
    batch = torch.export.Dim("batch", min=1, max=1024)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
            torch._inductor.aoti_compile_and_package(program, package_path=path)
        return path
    except Exception as e:  # the harness then measures TorchScript alone
        print("export of", path, "failed:", str(e).splitlines()[0][:300])
        return None


def main(out, chosen, device):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    models = []

    mlp = torch.nn.Sequential(
        torch.nn.Linear(512, 1024), torch.nn.ReLU(),
        torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
        torch.nn.Linear(1024, 10)).eval()
    models.append(("mlp", mlp, [512], [10], "16,32,64,128", 10))

    # resnet18 on 64x64 images: the real architecture, small inputs to stay fast on 2 cores.
    resnet = resnet18(num_classes=1000).eval()
    models.append(("resnet18", resnet, [3, 64, 64], [1000], "1,2,4,8,16", 100))

    layer = torch.nn.TransformerEncoderLayer(256, 4, 1024, batch_first=True)
    encoder = torch.nn.TransformerEncoder(layer, 4).eval()
    models.append(("transformer", encoder, [64, 256], [64, 256], "1,2,4,8,16", 100))

    with open(os.path.join(out, "models.txt"), "w") as index:
        for name, module, in_shape, out_shape, batches, bound_ms in models:
            if chosen and name not in chosen:
                continue
            path = os.path.join(out, name + ".pt")
            torch.jit.script(module).save(path)
            package = export_package(module, in_shape, os.path.join(out, name + ".pt2"), device)
            index.write("%s %s %s %s %s %d%s\n" % (
                name, path, ",".join(map(str, in_shape)), ",".join(map(str, out_shape)),
                batches, bound_ms, " " + package if package else ""))
            print("scripted", name, "->", path, "; exported ->", package)


if __name__ == "__main__":
    chosen, device = [], "cpu"
    args = sys.argv[2:]
    while len(args) >= 2:
        if args[0] == "--models":
            chosen = args[1].split(",")
        elif args[0] == "--device":
            device = args[1]
        else:
            sys.exit("unknown argument " + args[0])
        args = args[2:]
    main(sys.argv[1], chosen, device)
