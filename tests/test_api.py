"""The public API's contract: keyword-only options, per-analysis ``params`` checked against the
registry (unknown names raise, listing the valid ones), flat names deprecated but working."""
import inspect
import warnings

import pytest

import visual_curation as vc
from visual_curation.core.analyze import resolve_params
from visual_curation.core.analyzers import ANALYSES, REGISTRY


def test_options_are_keyword_only_and_typed():
    sig = inspect.signature(vc.analyze)
    params = list(sig.parameters.values())
    assert params[0].name == "sample_collection"
    assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params[1:])
    assert all(p.annotation is not inspect.Parameter.empty for p in params[1:]
               if p.name not in ("progress", "legacy"))
    assert "Example::" in vc.analyze.__doc__


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
