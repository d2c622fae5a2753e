"""Visual Curation for FiftyOne.

SDK::

    import visual_curation as vc
    vc.compute_embeddings(dataset, model="demo")          # or ViT-B-32 / laion2b_s34b_b79k
    vc.analyze(dataset, label_field="ground_truth")       # vc_cluster_1..5, vc_dup_group, ...
    view = vc.find_similar(dataset, text="a photo of a sneaker", k=50)

As a FiftyOne plugin (``@visual-curation/curation``) this module registers the operators and the
cluster panel; the heavy libraries (torch, open_clip) load only when an operator runs.
"""
__version__ = "0.1.0"


def __getattr__(name):
    """The SDK (:mod:`visual_curation.core`'s names), loaded on first use."""
    if not __package__ or name.startswith("__"):   # pytest also imports this file alone
        raise AttributeError(name)
    core = _core()
    if name == "core":
        return core
    if name in core.__all__:
        value = getattr(core, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_core().__all__))


def _core():
    import importlib

    return importlib.import_module(f"{__name__}.core")



def register(plugin):
    """Called by FiftyOne's plugin loader."""
    from .operators import OPERATORS
    from .panels import PANELS

    for op in OPERATORS:
        plugin.register(op)
    for panel in PANELS:
        plugin.register(panel)
