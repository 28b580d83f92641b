"""Small convolutional networks for attribute heads: build, train (PyTorch, CPU), export to ONNX.

Training needs PyTorch (``pip install -e '.[train]'`` pins torch 2.13.0; the CPU build is
enough, e.g. from PyTorch's CPU package index); running mien does not: the exported network
runs in onnxruntime through
:class:`mien.analyzers.attributes.heads.ConvNet`.

The network is deliberately tiny (four 3x3 convolution blocks, about 80 k weights, well under a
millisecond per crop on one core): the crops are small aligned faces or eyes, grey or RGB, the
training sets a few thousand pictures. Several networks trained with different seeds can be
averaged into one (:func:`ensemble`) to even out training noise. Training is seeded and runs
on a fixed number of threads, so a rerun on the same machine rebuilds the same weights.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

#: Threads used for training (CI and the development machine have 2 cores).
THREADS = 2


@dataclass(frozen=True)
class Augment:
    """Random changes applied to each training crop, every epoch.

    ``rotate`` degrees, ``scale`` (relative), ``shift`` (fraction of the crop), ``flip``
    (mirror half of the crops), ``contrast`` / ``brightness`` (relative / absolute on [0, 1]),
    ``degrade``: probability of shrinking a crop to 35-90% and enlarging it back (blur and low
    resolution, as on small faces)."""

    rotate: float = 10.0
    scale: float = 0.08
    shift: float = 0.06
    flip: bool = True
    contrast: float = 0.3
    brightness: float = 0.1
    degrade: float = 0.3


def make_net(  # type: ignore[no-untyped-def]
    outputs: int = 1,
    channels: tuple[int, ...] = (16, 32, 64, 96),
    dropout: float = 0.2,
    in_channels: int = 1,
):
    """Conv 3x3 + batch norm + ReLU + 2x2 max pool per block, global average pool, dropout,
    linear layer to ``outputs`` logits. ``in_channels``: 1 for grey crops, 3 for RGB."""
    import torch.nn as nn

    layers: list[nn.Module] = []
    c_in = in_channels
    for c in channels:
        layers += [
            nn.Conv2d(c_in, c, 3, padding=1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        ]
        c_in = c
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, outputs)]
    return nn.Sequential(*layers)


def _augment(x, aug: Augment, gen):  # type: ignore[no-untyped-def]
    """Apply ``aug`` to a float batch ``(N, C, S, S)`` in [0, 1]."""
    import torch
    import torch.nn.functional as F

    n, _, s, _ = x.shape
    u = lambda: torch.rand(n, generator=gen) * 2 - 1  # noqa: E731
    ang = u() * np.deg2rad(aug.rotate)
    sc = 1 + u() * aug.scale
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0) if aug.flip else torch.ones(n)
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
    theta[:, 0, 2], theta[:, 1, 2] = u() * aug.shift * 2, u() * aug.shift * 2
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if aug.degrade > 0:
        pick = torch.rand(n, generator=gen) < aug.degrade
        if bool(pick.any()):
            f = float(0.35 + 0.55 * torch.rand(1, generator=gen))
            small = max(4, round(s * f))
            low = F.interpolate(x[pick], size=(small, small), mode="area")
            x[pick] = F.interpolate(low, size=(s, s), mode="bilinear", align_corners=False)
    c = 1 + u() * aug.contrast
    b = u() * aug.brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * c.view(n, 1, 1, 1) + mean + b.view(n, 1, 1, 1)
    return x.clamp(0, 1)


def train_net(  # type: ignore[no-untyped-def]
    crops: npt.NDArray[np.uint8],
    y: npt.NDArray[np.int64],
    *,
    weights: F32 | None = None,
    outputs: int = 1,
    epochs: int = 20,
    batch: int = 128,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    aug: Augment = Augment(),
    seed: int = 0,
    channels: tuple[int, ...] = (16, 32, 64, 96),
    log: bool = True,
    multilabel: bool = False,
):
    """Train :func:`make_net` on grey crops ``(N, S, S)`` (or RGB crops ``(N, S, S, 3)``) with
    labels ``y`` (0/1 for one output, class indices for more) and optional per-crop ``weights``;
    AdamW with a one-cycle schedule.

    ``multilabel``: ``outputs`` independent yes/no outputs, ``y`` of shape ``(N, outputs)`` with
    0 / 1, or -1 where a label is unknown (left out of the loss), binary cross-entropy per
    output; ``weights`` then of shape ``(N,)`` or ``(N, outputs)``.
    Returns the network in eval mode."""
    import time

    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(seed)
    x_np = _as_nchw(crops)
    net = make_net(outputs, channels, in_channels=x_np.shape[1])
    x_all = torch.from_numpy(x_np)
    y_all = torch.from_numpy(np.asarray(y))
    w_all = torch.from_numpy(
        np.ones(len(y), np.float32) if weights is None else np.asarray(weights, np.float32)
    )
    if multilabel:
        if y_all.ndim != 2 or y_all.shape[1] != outputs:
            raise ValueError(f"multilabel needs y of shape (N, {outputs})")
        w_all = (w_all if w_all.ndim == 2 else w_all[:, None].expand(-1, outputs)) * (y_all >= 0)
    steps = epochs * (-(-len(y) // batch))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    for epoch in range(epochs):
        t0 = time.time()
        net.train()
        order = torch.randperm(len(y), generator=gen)
        total = 0.0
        for k in range(0, len(y), batch):
            idx = order[k : k + batch]
            xb = _augment(x_all[idx].clone(), aug, gen)
            out = net(xb)
            if multilabel:
                loss_each = F.binary_cross_entropy_with_logits(
                    out, y_all[idx].clamp(min=0).float(), reduction="none"
                )
            elif outputs == 1:
                loss_each = F.binary_cross_entropy_with_logits(
                    out[:, 0], y_all[idx].float(), reduction="none"
                )
            else:
                loss_each = F.cross_entropy(out, y_all[idx].long(), reduction="none")
            w = w_all[idx]
            loss = (loss_each * w).sum() / (w.sum().clamp(min=1e-8) if multilabel else w.sum())
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if log:
            print(
                f"  epoch {epoch + 1}/{epochs} loss {total / len(y):.4f} "
                f"({time.time() - t0:.0f} s)",
                flush=True,
            )
    return net.eval()


def _as_nchw(crops: npt.NDArray[np.uint8]) -> F32:
    """uint8 crops ``(N, S, S)`` or ``(N, S, S, C)`` as float32 ``(N, C, S, S)`` in [0, 1]."""
    x = np.asarray(crops, np.float32) / 255.0
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    raise ValueError(f"crops must be (N, S, S) or (N, S, S, C), not {x.shape}")


def ensemble(nets):  # type: ignore[no-untyped-def]
    """One network whose logits are the mean of ``nets``' logits (all on the same input); it
    exports as a single ONNX graph, so a head still carries one network."""
    import torch
    import torch.nn as nn

    class MeanOf(nn.Module):
        def __init__(self, members) -> None:  # type: ignore[no-untyped-def]
            super().__init__()
            self.members = nn.ModuleList(members)

        def forward(self, x):  # type: ignore[no-untyped-def]
            return torch.stack([m(x) for m in self.members]).mean(dim=0)

    return MeanOf(list(nets)).eval()


def export_onnx(net, size: int, in_channels: int = 1) -> bytes:  # type: ignore[no-untyped-def]
    """The network as ONNX bytes (opset 17, input ``crop`` of shape (N, in_channels, size,
    size) in [0, 1], output ``logits``; the batch size is dynamic)."""
    import torch

    buf = io.BytesIO()
    torch.onnx.export(
        net,
        (torch.zeros(1, in_channels, size, size),),
        buf,
        input_names=["crop"],
        output_names=["logits"],
        dynamic_axes={"crop": {0: "n"}, "logits": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )
    return buf.getvalue()


def logits(net_bytes: bytes, crops: npt.NDArray[np.uint8], batch: int = 1024) -> F32:
    """The exported network's outputs on ``crops`` (N, S, S) or (N, S, S, C), through mien's
    own runtime."""
    from mien.analyzers.attributes.heads import ConvNet

    conv = ConvNet(net_bytes)
    parts = [conv(crops[k : k + batch]) for k in range(0, len(crops), batch)]
    return np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
