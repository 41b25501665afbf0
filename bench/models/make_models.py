"""Scripts the benchmark's models with Debian's python3-torch and python3-torchvision.

Random weights, nothing downloaded. Writes <name>.pt (TorchScript) and models.txt, one line per
model: name, file, per-item input shape, per-item output shape, batch sizes to try for the
limit, and the p99 latency bound (ms) of the server scenario.

    /usr/bin/python3 bench/models/make_models.py OUT_DIR
"""
import os
import sys

import torch
import torchvision


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
    resnet = torchvision.models.resnet18(num_classes=1000).eval()
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
