"""Makes the test suite's AOTInductor packages (.pt2) and the same models as TorchScript.

Usage: make_packages.py OUT_DIR. Writes into OUT_DIR:
  mlp.pt / mlp.pt2            an MLP 16 -> 32 -> 4; the package with a dynamic batch of 1..64
                              (export turns the minimum into 2)
  mlp_static4.pt2             the same weights, exported with a static batch of 4
  two_io.pt / two_io.pt2      inputs x float32 [B, 16] and scale int64 [B], outputs y [B, 4]
                              and total [B]; dynamic batch
  mlp_cuda_key.pt2            mlp.pt2 with its metadata saying it was compiled for CUDA
  mlp_future.pt2              mlp.pt2 claiming an archive version no torch writes yet (99)
  stamp                       written last: the script's own hash, so that a build reuses the
                              packages until this file changes (each export compiles C++: ~20 s)
Random weights from a fixed seed; nothing is downloaded.
"""
import hashlib
import io
import os
import sys
import warnings
import zipfile

import torch

warnings.filterwarnings("ignore")


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(16, 32)
        self.b = torch.nn.Linear(32, 4)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


class TwoIo(torch.nn.Module):
    def __init__(self, mlp):
        super().__init__()
        self.mlp = mlp

    def forward(self, x, scale):
        y = self.mlp(x * scale.to(x.dtype).unsqueeze(1))
        return y, y.sum(1)


def export(module, example, dynamic, path):
    shapes = None
    if dynamic:
        batch = torch.export.Dim("batch", min=1, max=64)
        shapes = tuple({0: batch} for _ in example)
    program = torch.export.export(module, example, dynamic_shapes=shapes)
    torch._inductor.aoti_compile_and_package(program, package_path=path)


def rewritten(source, target, suffix, edit):
    """Copies a package, passing the contents of the entry ending in `suffix` through `edit`."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith(suffix):
                data = edit(data)
            zout.writestr(item, data)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    stamp_path = os.path.join(out, "stamp")
    with open(__file__, "rb") as f:
        stamp = hashlib.sha256(f.read() + torch.__version__.encode()).hexdigest()
    if os.path.exists(stamp_path) and open(stamp_path).read() == stamp:
        return
    torch.manual_seed(7)
    mlp = Mlp().eval()
    two = TwoIo(mlp).eval()
    x = torch.randn(3, 16)
    scale = torch.tensor([1, 2, 3])
    with torch.no_grad():
        torch.jit.script(mlp).save(os.path.join(out, "mlp.pt"))
        torch.jit.script(two).save(os.path.join(out, "two_io.pt"))
        export(mlp, (x,), True, os.path.join(out, "mlp.pt2"))
        export(mlp, (torch.randn(4, 16),), False, os.path.join(out, "mlp_static4.pt2"))
        export(two, (x, scale), True, os.path.join(out, "two_io.pt2"))
    mlp_package = os.path.join(out, "mlp.pt2")
    rewritten(mlp_package, os.path.join(out, "mlp_cuda_key.pt2"), "wrapper_metadata.json",
              lambda data: data.replace(b'"AOTI_DEVICE_KEY": "cpu"', b'"AOTI_DEVICE_KEY": "cuda"'))
    rewritten(mlp_package, os.path.join(out, "mlp_future.pt2"), "/archive_version", lambda _: b"99")
    with open(stamp_path, "w") as f:
        f.write(stamp)


if __name__ == "__main__":
    main()
