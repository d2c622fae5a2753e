"""Adding an analysis is one new module plus its entry in the registry: in a copy of the
repository, a new analyzer module (a neighbour-density score with its own field and issue) is
registered, and with nothing else changed the run options, ``analyze``, ``vc_issues``, the
operators, the panel's issue list and the CLI all offer it."""
import os
import subprocess
import sys
import textwrap

import pytest

from test_standalone import _unpacked_head

MODULE = '''
"""Neighbour density: 1 - mean cosine to the k nearest items; flagged when far above the
dataset's typical value."""
import numpy as np

from .base import AnalysisInput, AnalysisResult, Analyzer, FieldSpec, IssueSpec, logistic


class DensityAnalyzer(Analyzer):
    name = "density"
    field_specs = (FieldSpec("vc_density", "float", "Visual Curation: sparse neighbourhood"),)
    issues = (IssueSpec("sparse", "vc_density"),)
    defaults = dict(density_k=5)
    param_help = dict(density_k="neighbours averaged")

    def run(self, inp: AnalysisInput, progress=None, **params) -> AnalysisResult:
        p = self.params(**params)
        _, sim = inp.knn(int(p["density_k"]))
        d = 1.0 - sim.mean(axis=1)
        z = (d - np.median(d)) / (1.4826 * np.median(np.abs(d - np.median(d))) + 1e-9)
        return AnalysisResult(fields=dict(vc_density=logistic(z - 3.0).tolist()),
                              summary=dict(n=len(d)))
'''

SCRIPT = '''
import fiftyone as fo
import numpy as np
import visual_curation as vc
from visual_curation.core.analyzers import ANALYSES, FIELD_SPECS, ISSUES
from visual_curation.operators.analyses import RunAnalyses
from visual_curation.panels.statistics import ISSUE_TYPES

assert "density" in ANALYSES and "sparse" in ISSUES and "vc_density" in FIELD_SPECS
assert "sparse" in ISSUE_TYPES and "density" in RunAnalyses().config.description
name = "vc-test-new-analysis"
if fo.dataset_exists(name):
    fo.delete_dataset(name)
ds = fo.Dataset(name)
ds.add_samples([fo.Sample(filepath=f"/missing/{i}.jpg") for i in range(200)])
X = np.random.default_rng(0).normal(size=(200, 16))
X[:190] = X[:190] * 0.05 + 1.0          # a dense bulk and ten scattered items
vc.import_embeddings(ds, embeddings=X)
s = vc.analyze(ds, analyses=["density", "uniqueness"], params={"density": {"density_k": 4}})
assert s["issues"]["sparse"] >= 10, s
flagged = ds.match(fo.ViewField("vc_issues").contains("sparse")).values("id")
assert set(ds.values("id")[190:]) <= set(flagged), "the scattered items are flagged"
ds.add_sample(fo.Sample(filepath="/missing/new.jpg"))
vc.import_embeddings(ds, embeddings=np.vstack([X, X[:1]]))
again = vc.analyze(ds, analyses=["density", "uniqueness"], params={"density": {"density_k": 4}})
assert "incremental" not in again                 # no update(): a full run, said why
vc.delete_run(ds)
ds.delete()
print("ok")
'''


@pytest.mark.slow
def test_a_new_analysis_is_one_module_and_one_registry_entry(tmp_path):
    root = _unpacked_head(tmp_path)
    (root / "core" / "analyzers" / "density.py").write_text(textwrap.dedent(MODULE))
    reg = root / "core" / "analyzers" / "__init__.py"
    text = reg.read_text()
    anchor = "from .uniqueness import UniquenessAnalyzer\n"
    assert anchor in text and "QualityAnalyzer())" in text
    text = text.replace(anchor, anchor + "from .density import DensityAnalyzer\n")
    text = text.replace("QualityAnalyzer())", "QualityAnalyzer(), DensityAnalyzer())")
    reg.write_text(text)
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "path"),
               FIFTYONE_DATABASE_NAME="visual-curation-tests-new-analysis",
               VISUAL_CURATION_LANCEDB_URI=str(tmp_path / "lancedb"))
    env.pop("FIFTYONE_PLUGINS_DIR", None)
    r = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-3000:]
    cli = subprocess.run([sys.executable, "-m", "visual_curation.core.cli", "analyze", "--help"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert "density" in cli.stdout, cli.stdout + cli.stderr
