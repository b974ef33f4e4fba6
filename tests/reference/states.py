"""Seeded random weights in the official layouts of the learned metrics' networks, shared by the tests and
by ``make_metric_references.py``, which computes the reference outputs on them with the official code."""
import torch

# torchvision's vgg16().features: (index, in, out) of each conv; LPIPS taps the ReLU after these convs
VGG_CONVS = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256), (14, 256, 256),
             (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512), (28, 512, 512)]
TAPS = {2: 0, 7: 1, 14: 2, 21: 3, 28: 4}  # the conv whose ReLU ends LPIPS slice L
# the modules whose outputs are pinned: every stage of the FID Inception
INCEPTION_STAGES = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "Mixed_5b",
                    "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a",
                    "Mixed_7b", "Mixed_7c"]


def lpips_states() -> tuple[dict, dict]:
    """(torchvision VGG16 state dict with a classifier key, LPIPS v0.1 lin layers), seeded."""
    g = torch.Generator().manual_seed(0)
    vgg = {"classifier.0.weight": torch.zeros(2, 2)}
    for idx, cin, cout in VGG_CONVS:
        vgg[f"features.{idx}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * (2 / (9 * cin)) ** 0.5
        vgg[f"features.{idx}.bias"] = torch.randn(cout, generator=g) * 0.01
    lin = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for i, c in enumerate([64, 128, 256, 512, 512])}
    return vgg, lin


def inception_state(shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """pytorch-fid's FID Inception layout, seeded: every conv and BatchNorm tensor of ``shapes`` plus the
    1008-way fc, no num_batches_tracked (the official file predates it)."""
    g = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("conv.weight"):
            state[key] = torch.randn(shape, generator=g) * (2 / shape[1:].numel()) ** 0.5
        elif key.endswith(("running_var", "bn.weight")):
            state[key] = 1 + 0.1 * torch.rand(shape, generator=g)
        else:
            state[key] = 0.01 * torch.randn(shape, generator=g)
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    return state


def inception_input() -> torch.Tensor:
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def lpips_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.rand(2, 3, 32, 32, generator=g) * 2 - 1


def summary(activation: torch.Tensor) -> dict[str, torch.Tensor]:
    """What is pinned of one stage's (B, C, H, W) output: the spatial mean per channel and the centre column."""
    return {"mean": activation.mean((2, 3)), "centre": activation[:, :, activation.shape[2] // 2, activation.shape[3] // 2]}
