"""Compute the reference outputs that ``tests/test_metric_weights.py`` pins, with the official code.

Run once by a developer, never by the tests; it writes ``metric_references.safetensors`` beside itself:

    pip download --no-deps torchvision==0.28.0 lpips==0.1.4 -d /tmp/ref     # only their Python files are used
    # pytorch-fid's inception.py from github mseitzer/pytorch-fid (src/pytorch_fid/inception.py)
    python tests/reference/make_metric_references.py --torchvision-wheel /tmp/ref/torchvision-*.whl \\
        --lpips-wheel /tmp/ref/lpips-*.whl --pytorch-fid-inception path/to/inception.py

torchvision's compiled parts do not match every torch, so the script imports only torchvision's
``models/inception.py`` and ``models/vgg.py`` (pure PyTorch modules) from the wheel, under a minimal
package whose weight registry is stubbed out: nothing is downloaded, the seeded weights of
``states.py`` are loaded into the official networks, and every stage's output is recorded.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import types
import zipfile
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from scvae.evaluation.fid import InceptionFeatures  # noqa: E402  (before the stub: torchmetrics probes torchvision)
from tests.reference.states import (INCEPTION_STAGES, VGG_CONVS, inception_input, inception_state,  # noqa: E402
                                    lpips_inputs, lpips_states, summary)

OUT = Path(__file__).with_name("metric_references.safetensors")


def _stub_torchvision(wheel: Path, root: Path) -> None:
    """A package ``torchvision`` with the wheel's inception.py and vgg.py and stubs for what they import."""
    with zipfile.ZipFile(wheel) as z:
        for name in ("torchvision/models/inception.py", "torchvision/models/vgg.py"):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(z.read(name))
    version = wheel.name.split("-")[1]
    (root / "torchvision/__init__.py").write_text(f"__version__ = {version!r}\nfrom . import models\n")
    (root / "torchvision/models/__init__.py").write_text(
        "from . import inception, vgg\nfrom .inception import inception_v3\nfrom .vgg import vgg16\n")
    (root / "torchvision/transforms").mkdir()
    (root / "torchvision/transforms/__init__.py").write_text("")
    (root / "torchvision/transforms/_presets.py").write_text("class ImageClassification:\n    pass\n")
    (root / "torchvision/utils.py").write_text("def _log_api_usage_once(obj):\n    pass\n")
    (root / "torchvision/models/_meta.py").write_text("_IMAGENET_CATEGORIES = []\n")
    (root / "torchvision/models/_api.py").write_text(
        "import enum\n\nclass Weights:\n    def __init__(self, **kwargs):\n        self.__dict__.update(kwargs)\n\n"
        "class WeightsEnum(enum.Enum):\n    @classmethod\n    def verify(cls, obj):\n        assert obj is None\n"
        "        return obj\n\ndef register_model(name=None):\n    return lambda fn: fn\n")
    (root / "torchvision/models/_utils.py").write_text(
        "import functools\n\ndef handle_legacy_interface(**weights):\n    def wrap(builder):\n"
        "        @functools.wraps(builder)\n        def inner(*args, pretrained=False, **kwargs):\n"
        "            assert not pretrained, 'the reference loads seeded weights, never downloads'\n"
        "            kwargs.setdefault('weights', None)\n            return builder(*args, **kwargs)\n"
        "        return inner\n    return wrap\n\n"
        "def _ovewrite_named_param(kwargs, param, new_value):\n    kwargs.setdefault(param, new_value)\n")
    sys.path.insert(0, str(root))


def _record(net: torch.nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    outputs = {}
    for name in names:
        net.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: outputs.__setitem__(name, o))
    return outputs


def inception_references(fid_source: Path) -> dict[str, torch.Tensor]:
    module = types.ModuleType("pytorch_fid_inception")
    module.__file__ = str(fid_source)
    exec(compile(fid_source.read_text(), str(fid_source), "exec"), module.__dict__)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in InceptionFeatures().state_dict().items() if "num_batches" not in k}
    state = inception_state(shapes)
    module.load_state_dict_from_url = lambda *args, **kwargs: state  # the FID weights: our seeded ones
    built = {}
    build = module.fid_inception_v3
    module.fid_inception_v3 = lambda: built.setdefault("inception", build())  # keep the patched torchvision net
    net = module.InceptionV3([3], resize_input=True, normalize_input=True).eval()  # pool3, 2048 features
    stages = _record(built["inception"], INCEPTION_STAGES)  # the same module objects as in net.blocks
    with torch.no_grad():
        pool = net(inception_input())[0].flatten(1)
    out = {"inception.pool": pool}
    for stage in INCEPTION_STAGES:
        for part, value in summary(stages[stage]).items():
            out[f"inception.{stage}.{part}"] = value
    return out


def lpips_references(wheel: Path, root: Path) -> dict[str, torch.Tensor]:
    with zipfile.ZipFile(wheel) as z:
        for name in ("lpips/lpips.py", "lpips/pretrained_networks.py"):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(z.read(name))
        init = z.read("lpips/__init__.py").decode()
    (root / "lpips/__init__.py").write_text(init.replace("from lpips.trainer import *", ""))  # trainer: not needed
    import lpips

    vgg, lin = lpips_states()
    lin_path = root / "vgg_lin.pth"
    torch.save(lin, lin_path)
    net = lpips.LPIPS(net="vgg", version="0.1", pnet_rand=True, model_path=str(lin_path), verbose=False).eval()
    slices = [net.net.slice1, net.net.slice2, net.net.slice3, net.net.slice4, net.net.slice5]
    for idx, _, _ in VGG_CONVS:  # torchvision's features.N is in exactly one slice, under the same N
        conv = next(s for s in slices if str(idx) in s._modules)._modules[str(idx)]
        conv.weight.data.copy_(vgg[f"features.{idx}.weight"])
        conv.bias.data.copy_(vgg[f"features.{idx}.bias"])
    x, y = lpips_inputs()
    taps = _record(net.net, [f"slice{i}" for i in range(1, 6)])
    with torch.no_grad():
        distance = net(x, y).flatten()  # the taps now hold y's activations (its second pass)
    out = {"lpips.distance": distance}
    for i in range(1, 6):
        for part, value in summary(taps[f"slice{i}"]).items():
            out[f"lpips.tap{i - 1}.{part}"] = value
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torchvision-wheel", type=Path, required=True)
    parser.add_argument("--lpips-wheel", type=Path, required=True)
    parser.add_argument("--pytorch-fid-inception", type=Path, required=True, help="pytorch-fid's inception.py")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        _stub_torchvision(args.torchvision_wheel, Path(tmp))
        import torchvision

        references = {**inception_references(args.pytorch_fid_inception), **lpips_references(args.lpips_wheel, Path(tmp))}
    save_file({k: v.contiguous() for k, v in references.items()}, str(OUT),
              metadata={"made_by": "tests/reference/make_metric_references.py", "torchvision": torchvision.__version__})
    print(f"wrote {len(references)} tensors to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
