"""The public API's contract: keyword-only options, per-analysis ``params`` checked against the
registry (unknown names raise, listing the valid ones), flat names deprecated but working."""
import inspect
import warnings

import pytest

import visual_curation as vc
from visual_curation.core.analyze import resolve_params
from visual_curation.core.analyzers import ANALYSES, REGISTRY


@pytest.mark.parametrize("fn, positional", [
    (vc.analyze, 1), (vc.compute_embeddings, 1), (vc.find_similar, 1), (vc.delete_run, 1),
    (vc.import_embeddings, 2), (vc.carry_results, 2)])
def test_options_are_keyword_only_typed_and_shown(fn, positional):
    params = list(inspect.signature(fn).parameters.values())
    assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params[positional:]), fn
    untyped = [p.name for p in params[1:] if p.annotation is inspect.Parameter.empty
               and p.kind is not p.VAR_KEYWORD and p.name not in ("progress", "image",
                                                                   "embeddings")]
    assert not untyped, (fn.__name__, untyped)
    assert "Example::" in fn.__doc__


def test_params_checked_against_the_registry():
    assert resolve_params({"duplicates": {"dup_min_sim": 0.8, "dup_k": None}}) == {
        "duplicates": {"dup_min_sim": 0.8}}
    with pytest.raises(ValueError, match="unknown analysis 'dupes'.*duplicates"):
        resolve_params({"dupes": {"dup_k": 3}})
    with pytest.raises(TypeError, match=r"unknown parameter\(s\) \['dup_kk'\].*dup_k"):
        resolve_params({"duplicates": {"dup_kk": 3}})
    with pytest.raises(TypeError, match="unexpected keyword argument 'dup_kk'"):
        resolve_params(None, {"dup_kk": 3})


def test_flat_parameter_names_still_work_with_a_warning():
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        out = resolve_params({"quality": {"blur_softness": 0.1}}, {"dup_min_sim": 0.9})
    assert out == {"quality": {"blur_softness": 0.1}, "duplicates": {"dup_min_sim": 0.9}}
    assert any(issubclass(w.category, DeprecationWarning) and "params=" in str(w.message)
               for w in got)


def test_every_analysis_documents_its_parameters():
    for name in ANALYSES:
        a = REGISTRY[name]
        assert set(a.param_help) == set(a.defaults), name


@pytest.mark.slow
def test_params_reach_the_analyzer_and_the_run_record(fmnist_dataset):
    ds, _ = fmnist_dataset
    vc.compute_embeddings(ds, model="demo")
    loose = vc.analyze(ds, analyses=["duplicates"])
    strict = vc.analyze(ds, analyses=["duplicates"],
                        params={"duplicates": {"dup_min_sim": 0.999}})
    assert strict["issues"]["duplicate"] <= loose["issues"]["duplicate"]
    assert not strict.get("skipped")           # other parameters: not the identical run
    with pytest.raises(TypeError, match="dup_min_sim"):
        vc.analyze(ds, params={"duplicates": {"dup_min_simm": 1}})


def _example(fn):
    """The code of the ``Example::`` block of ``fn``'s docstring, dedented."""
    import textwrap

    doc = fn.__doc__
    block = doc[doc.index("Example::") + len("Example::"):]
    lines = []
    for line in block.splitlines()[1:]:
        if line.strip() and not line.startswith(" " * 8):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines))


@pytest.mark.slow
def test_docstring_examples_run(fmnist_dataset):
    ds, _ = fmnist_dataset
    ns = {"dataset": ds}
    for fn in (vc.compute_embeddings, vc.import_embeddings, vc.analyze, vc.find_similar,
               vc.delete_run):
        exec(compile(_example(fn), f"{fn.__name__} docstring", "exec"), ns)
    assert "vc_issues" in ns["removed"]["fields"] and len(ns["view"]) >= 1


@pytest.mark.slow
def test_new_thresholds_rederive_issues_without_analysing_again(fmnist_dataset):
    """Only the thresholds changed: vc_issues comes from the stored scores (no analysis
    runs), and equals what a full run with those thresholds writes."""
    ds, _ = fmnist_dataset
    vc.compute_embeddings(ds, model="demo")
    first = vc.analyze(ds, label_field="ground_truth")
    scores_before = ds.values("vc_mislabel")
    strict = {"mislabel": 0.9, "blur": 0.2}
    quick = vc.analyze(ds, label_field="ground_truth", thresholds=strict)
    assert quick.get("rederived") and "timings" in quick
    assert ds.values("vc_mislabel") == scores_before        # the scores were not recomputed
    issues = ds.values("vc_issues")
    assert quick["issues"]["mislabel"] <= first["issues"]["mislabel"]
    full = vc.analyze(ds, label_field="ground_truth", thresholds=strict, force=True)
    assert not full.get("rederived") and ds.values("vc_issues") == issues
    assert full["issues"] == quick["issues"]
    again = vc.analyze(ds, label_field="ground_truth", thresholds=strict)
    assert again.get("skipped")
