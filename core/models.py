"""Loading open_clip models: hub tags, local checkpoints and the shipped offline demo model.

Every model goes through :func:`load_model`. ``model="demo"`` is the small CLIP trained on
Fashion-MNIST that ships with the plugin: its architecture is registered with open_clip from
``core/assets/vc-demo-clip.json`` and its weights are the local checkpoint next to it, so it is
created by exactly the same ``open_clip.create_model_and_transforms(name, pretrained=...)`` call
as ``ViT-B-32`` + ``laion2b_s34b_b79k`` or ``ViT-B-32`` + ``/path/to/checkpoint.pt``.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEMO_MODEL = "demo"
DEMO_ARCH = "vc-demo-clip"
ASSETS_DIR = Path(__file__).resolve().parent / "assets"
DEMO_CONFIG = ASSETS_DIR / f"{DEMO_ARCH}.json"
DEMO_CHECKPOINT = ASSETS_DIR / f"{DEMO_ARCH}.pt"
DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"

_lock = threading.Lock()
_cache: dict = {}


def resolve_device(device="auto"):
    """``"auto"`` → ``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def resolve_model(model=DEFAULT_MODEL, pretrained=DEFAULT_PRETRAINED):
    """Returns ``(open_clip architecture name, pretrained tag or checkpoint path or None)``.

    ``model="demo"`` maps to the shipped architecture; its weights are the shipped checkpoint
    unless ``pretrained`` is a path to another checkpoint of the same architecture.
    """
    if model == DEMO_MODEL:
        if pretrained and os.path.exists(str(pretrained)):
            return DEMO_ARCH, str(pretrained)
        return DEMO_ARCH, str(DEMO_CHECKPOINT)
    if pretrained and os.path.exists(os.path.expanduser(str(pretrained))):
        pretrained = os.path.abspath(os.path.expanduser(str(pretrained)))
    return model, (pretrained or None)


def model_key(model=DEFAULT_MODEL, pretrained=DEFAULT_PRETRAINED):
    """A short stable name for a (model, weights) pair, used in table names and run records."""
    import hashlib
    import re

    arch, weights = resolve_model(model, pretrained)
    if model == DEMO_MODEL and weights == str(DEMO_CHECKPOINT):
        return "demo"
    if weights is None:
        tag = "random"
    elif os.path.exists(weights):
        tag = Path(weights).stem[:24] + "-" + hashlib.sha1(weights.encode()).hexdigest()[:8]
    else:
        tag = weights
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{arch}-{tag}")


def register_demo_config():
    import open_clip

    if DEMO_ARCH not in open_clip.list_models():
        open_clip.add_model_config(DEMO_CONFIG)


@contextmanager
def _root_logger_untouched():
    """open_clip logs through the root logger (``logging.info``), which configures the root
    logger of the caller's whole process when it has no handler yet (``basicConfig``): every
    INFO record of every library, FiftyOne's progress bars included, would then print twice.
    A handler-less root gets a null handler for the duration."""
    import logging

    root = logging.getLogger()
    guard = logging.NullHandler() if not root.handlers else None
    if guard is not None:
        root.addHandler(guard)
    try:
        yield
    finally:
        if guard is not None:
            root.removeHandler(guard)


@dataclass
class LoadedModel:
    """An open_clip model ready for inference, with its preprocessing and tokenizer."""

    name: str
    arch: str
    pretrained: str | None
    model: object
    preprocess: object
    tokenizer: object
    device: str

    def __post_init__(self):
        self._fast = _fast_transform(self.preprocess)

    @property
    def fast(self):
        """True when :meth:`prepare` returns plain uint8 arrays (no torch work per image)."""
        return self._fast is not None

    def prepare(self, im):
        """One RGB ``PIL.Image`` → what :meth:`collate` stacks into a batch.

        For open_clip's standard eval transform (resize, centre crop, RGB, ToTensor, Normalize)
        this is only the geometric part on the PIL image, as a uint8 array: the conversion to
        float and the normalisation run once per batch in :meth:`collate`, which costs a
        fraction of doing them image by image. Any other transform is applied as it is."""
        if self._fast is None:
            return self.preprocess(im)
        for step in self._fast[0]:
            im = step(im)
        if im.mode != "RGB":
            im = im.convert("RGB")
        return np.asarray(im)

    def collate(self, items):
        """Outputs of :meth:`prepare` → the preprocessed batch tensor (B, C, H, W)."""
        import torch

        if self._fast is None:
            return torch.stack(items)
        scale, shift = self._fast[1], self._fast[2]
        x = torch.from_numpy(np.stack(items)).permute(0, 3, 1, 2).contiguous().float()
        return x.mul_(scale).sub_(shift)

    @property
    def dim(self):
        return int(self.model.text_projection.shape[1]) if getattr(
            self.model, "text_projection", None) is not None else self._probe_dim()

    def _probe_dim(self):
        return int(self.embed_text(["a"]).shape[1])

    def embed_tensors(self, batch):
        """``batch``: preprocessed image tensor (B, C, H, W) → L2-normalised float32 (B, D)."""
        import torch

        with torch.inference_mode():
            feats = self.model.encode_image(batch.to(self.device, non_blocking=True))
            feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return feats.cpu().numpy().astype(np.float32, copy=False)

    def embed_text(self, texts):
        """List of strings → L2-normalised float32 (len(texts), D)."""
        import torch

        texts = [str(t) for t in texts]
        with torch.inference_mode():
            tokens = self.tokenizer(texts).to(self.device)
            feats = self.model.encode_text(tokens)
            feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return feats.cpu().numpy().astype(np.float32, copy=False)


def _fast_transform(preprocess):
    """``(geometric PIL steps, scale, shift)`` when ``preprocess`` is open_clip's eval transform
    shape (Resize/CenterCrop steps, an RGB conversion, ToTensor, Normalize), else None.

    ``ToTensor`` then ``Normalize`` is ``(x / 255 - mean) / std``, i.e. ``x * scale - shift``
    with ``scale = 1 / (255 std)`` and ``shift = mean / std`` per channel."""
    import torch
    from torchvision import transforms as T

    steps = list(getattr(preprocess, "transforms", None) or [])
    if len(steps) < 3 or not isinstance(steps[-1], T.Normalize) \
            or not isinstance(steps[-2], T.ToTensor):
        return None
    geometric = []
    for step in steps[:-2]:
        if isinstance(step, (T.Resize, T.CenterCrop)):
            geometric.append(step)
        elif getattr(step, "mode", "RGB") == "RGB" and (
                type(step).__name__ == "MaybeConvertMode"
                or getattr(step, "__name__", "") == "_convert_to_rgb"):
            continue
        else:
            return None
    norm = steps[-1]
    mean = torch.as_tensor(norm.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.as_tensor(norm.std, dtype=torch.float32).view(1, -1, 1, 1)
    if mean.numel() != 3 or std.numel() != 3:
        return None
    return geometric, 1.0 / (255.0 * std), mean / std


def model_dim(model=DEFAULT_MODEL, pretrained=DEFAULT_PRETRAINED):
    """The size of the model's embeddings, read from its open_clip config (no weights loaded)."""
    import open_clip

    arch, _ = resolve_model(model, pretrained)
    if model == DEMO_MODEL:
        register_demo_config()
    if arch not in open_clip.list_models():
        raise ValueError(f"Unknown open_clip model {arch!r}; choose one of "
                         f"open_clip.list_models() or 'demo'")
    conf = open_clip.get_model_config(arch) or {}
    if "embed_dim" in conf:
        return int(conf["embed_dim"])
    return load_model(model, pretrained, device="cpu").dim


def load_model(model=DEFAULT_MODEL, pretrained=DEFAULT_PRETRAINED, device="auto"):
    """Loads (once per process) an open_clip model for inference.

    Args:
        model: an open_clip architecture name (``"ViT-B-32"``, …) or ``"demo"``
        pretrained: an open_clip pretrained tag (``"laion2b_s34b_b79k"``), a path to a local
            checkpoint, or None for random weights (same compute cost as the real model)
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``…
    """
    import open_clip
    import torch

    arch, weights = resolve_model(model, pretrained)
    if model == DEMO_MODEL:
        register_demo_config()
        if weights == str(DEMO_CHECKPOINT) and not DEMO_CHECKPOINT.exists():
            raise FileNotFoundError(
                f"The demo model's checkpoint is missing ({DEMO_CHECKPOINT}); "
                "rebuild it with `python tools/train_demo_clip.py`")
    device = resolve_device(device)
    key = (arch, weights, device)
    with _lock:
        if key in _cache:
            return _cache[key]
        if arch not in open_clip.list_models():
            raise ValueError(f"Unknown open_clip model {arch!r}; choose one of "
                             f"open_clip.list_models() or 'demo'")
        try:
            with _root_logger_untouched():
                net, _, preprocess = open_clip.create_model_and_transforms(
                    arch, pretrained=weights, device=device)
        except RuntimeError as e:
            if weights and not os.path.exists(weights):
                raise RuntimeError(
                    f"Could not load pretrained weights {weights!r} for {arch!r}: {e}. Without "
                    "internet access, download the checkpoint elsewhere and pass its local path "
                    "as `pretrained`, or use model='demo'.") from e
            raise
        net.eval()
        if device == "cpu":
            torch.set_num_threads(max(1, torch.get_num_threads()))
        with _root_logger_untouched():
            tokenizer = open_clip.get_tokenizer(arch)
        loaded = LoadedModel(name=model_key(model, pretrained), arch=arch, pretrained=weights,
                             model=net, preprocess=preprocess, tokenizer=tokenizer,
                             device=device)
        _cache[key] = loaded
        return loaded
