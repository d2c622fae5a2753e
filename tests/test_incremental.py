"""Incremental analysis: samples added after a full run are analysed on their own, earlier samples
keep their values, and the new samples get what a from-scratch run gives them (real MongoDB,
LanceDB, Fashion-MNIST images with planted truth)."""
from pathlib import Path

import fiftyone as fo

import visual_curation as vc

FIELDS = [f"vc_cluster_{k}" for k in range(1, 6)] + [
    "vc_dup_group", "vc_duplicate", "vc_uniqueness", "vc_mislabel", "vc_suggested_label",
    "vc_outlier", "vc_blur", "vc_dark", "vc_bright", "vc_issues"]
DUP_FIELDS = {"vc_dup_group", "vc_duplicate", "vc_issues"}


def _snapshot(ds):
    vals = ds.values(["id"] + FIELDS)
    return {i: dict(zip(FIELDS, row)) for i, *row in zip(*vals)}


def _hold_out(ds, truth):
    """Removes 9 samples (3 %): two planted copies whose originals stay, one of each planted
    pixel defect, a planted mislabel, and clean ones. Returns what is needed to add them back."""
    names = [Path(p).name for p in ds.values("filepath")]
    ids = ds.values("id")
    pick = []
    dups = [j for j, nm in enumerate(names) if truth[nm].get("dup_of")]
    pick += dups[:2]
    for kind in ("blur", "dark", "bright"):
        pick += [j for j, nm in enumerate(names) if truth[nm].get("defect") == kind][:1]
    pick += [j for j, nm in enumerate(names) if truth[nm].get("mislabeled")][:1]
    pick += [j for j, nm in enumerate(names) if not truth[nm].get("dup_of")
             and not truth[nm].get("defect") and j not in pick][::60][:9 - len(pick)]
    held = [ids[j] for j in pick]
    saved = [(s.filepath, s.ground_truth.label) for s in ds.select(held)]
    ds.delete_samples(held)
    return saved


def _add(ds, saved):
    """Adds the saved samples back and embeds them; returns how many were embedded."""
    ds.add_samples([fo.Sample(filepath=fp, ground_truth=fo.Classification(label=lab))
                    for fp, lab in saved])
    return vc.compute_embeddings(ds, model="demo").embedded


def test_added_samples_are_analysed_incrementally(fmnist_dataset):
    ds, truth = fmnist_dataset
    saved = _hold_out(ds, truth)
    vc.compute_embeddings(ds, model="demo")
    full = vc.analyze(ds, label_field="ground_truth")
    assert "incremental" not in full
    before = _snapshot(ds)
    assert _add(ds, saved) == len(saved)
    inc = vc.analyze(ds, label_field="ground_truth")
    assert inc["incremental"]["added"] == len(saved)
    # earlier images' duplicate-check thumbnails come from the store: only some are decoded
    imgs = inc["incremental"]["duplicates_images"]
    assert imgs["from_store"] > 0 and imgs["decoded_after_all"] < imgs["from_store"]
    after = _snapshot(ds)
    new_ids = set(after) - set(before)
    assert len(new_ids) == len(saved)

    # earlier samples: identical, except duplicate groups a new sample joined
    changed = [i for i in before if before[i] != after[i]]
    for i in changed:
        assert {f for f in FIELDS if before[i][f] != after[i][f]} <= DUP_FIELDS
    assert len(changed) == inc["incremental"]["duplicates_regrouped_earlier_items"]

    # new samples: every field written, clusters nested like everyone's
    for i in new_ids:
        v = after[i]
        assert all(v[f"vc_cluster_{k}"] is not None for k in range(1, 6))
        assert 0.0 <= v["vc_uniqueness"] <= 1.0
        assert v["vc_mislabel"] is not None and v["vc_outlier"] is not None
        assert v["vc_suggested_label"] is not None and isinstance(v["vc_issues"], list)
    for k in range(1, 5):
        parent = {}
        for v in after.values():
            assert parent.setdefault(v[f"vc_cluster_{k + 1}"], v[f"vc_cluster_{k}"]) == \
                v[f"vc_cluster_{k}"]

    # the planted issues of the new samples are found, as a from-scratch run finds them
    name_of = dict(zip(ds.values("id"), [Path(p).name for p in ds.values("filepath")]))
    id_of = {nm: i for i, nm in name_of.items()}

    def found(snap):
        out = {}
        for i in new_ids:
            t = truth[name_of[i]]
            if t.get("dup_of"):
                out[i] = snap[i]["vc_dup_group"] is not None and \
                    snap[i]["vc_dup_group"] == snap[id_of[t["dup_of"]]]["vc_dup_group"]
            elif t.get("defect"):
                out[i] = t["defect"] in snap[i]["vc_issues"]
        return out

    inc_found = found(after)
    missed = {name_of[i]: dict(truth=truth[name_of[i]], fields=after[i],
                               original=after.get(id_of.get(truth[name_of[i]].get("dup_of"))))
              for i, ok in inc_found.items() if not ok}
    assert inc_found and not missed, (missed, inc["incremental"], inc.get("errors"))
    vc.analyze(ds, label_field="ground_truth", force=True)
    scratch = _snapshot(ds)
    assert found(scratch) == inc_found
    agree = sum(set(after[i]["vc_issues"]) == set(scratch[i]["vc_issues"]) for i in new_ids)
    assert agree >= len(new_ids) - 1


def test_pixel_signature_store_round_trip(tmp_path):
    import numpy as np

    from visual_curation.core.store import PixelSignatures

    uri = str(tmp_path / "lancedb")
    st = PixelSignatures("vc_test__table", uri=uri)
    rng = np.random.default_rng(0)
    sig = rng.standard_normal((6, 16)).astype(np.float16)
    stats = [dict(width=10 + j, height=20 + j, sharpness=0.5 * j) for j in range(6)]
    ids = [f"id{j}" for j in range(6)]
    st.write(ids[:4], [f"h{j}" for j in range(4)], sig[:4], stats[:4], replace=True)
    st.write(ids[3:], [f"h{j}" for j in range(3, 6)], sig[3:] * 2, stats[3:])  # id3 replaced
    got = st.read(["id5", "id0", "id3", "nope"], ["h5", "h0", "other", "x"])
    assert set(got) == {"id5", "id0"}                 # id3's file changed: not used
    assert np.array_equal(got["id5"][0], sig[5] * 2) and np.array_equal(got["id0"][0], sig[0])
    assert got["id5"][1] == dict(width=15, height=25, sharpness=2.5)
    assert np.array_equal(st.read(["id3"])["id3"][0], sig[3] * 2)
    st.write([], [], np.zeros((0, 16)), [], replace=True)  # a full run without pixels
    assert st.read(ids) == {}


def test_an_identical_rerun_after_an_increment_does_nothing(fmnist_dataset):
    ds, truth = fmnist_dataset
    saved = _hold_out(ds, truth)
    vc.compute_embeddings(ds, model="demo")
    vc.analyze(ds, label_field="ground_truth")
    _add(ds, saved[:4])
    assert vc.analyze(ds, label_field="ground_truth")["incremental"]["added"] == 4
    assert vc.analyze(ds, label_field="ground_truth").get("skipped")
    # a second increment counts everything added since the full run
    _add(ds, saved[4:])
    inc = vc.analyze(ds, label_field="ground_truth")["incremental"]
    assert inc["added"] == len(saved) - 4 and inc["added_since_full"] == len(saved)


def test_removed_or_relabelled_samples_get_a_full_run(fmnist_dataset):
    ds, truth = fmnist_dataset
    saved = _hold_out(ds, truth)
    vc.compute_embeddings(ds, model="demo")
    vc.analyze(ds, label_field="ground_truth")
    _add(ds, saved)
    s = ds.first()
    s.ground_truth.label = "Sneaker" if s.ground_truth.label != "Sneaker" else "Bag"
    s.save()
    assert "incremental" not in vc.analyze(ds, label_field="ground_truth")
    ds.delete_samples(ds.take(2, seed=0))
    _add(ds, saved[0:1])
    assert "incremental" not in vc.analyze(ds, label_field="ground_truth")
    # and the incremental path can be turned off
    _add(ds, saved[1:2])
    assert "incremental" not in vc.analyze(ds, label_field="ground_truth", incremental=False)


def test_small_additions_are_not_compacted_until_fragments_pile_up(tmp_path):
    """Compaction rewrites the rows of every small fragment: a 1 % addition must not rewrite
    the table, so the store compacts only once small fragments have piled up."""
    import numpy as np

    from visual_curation.core.store import VectorStore

    st = VectorStore("vc_test__compact", uri=str(tmp_path / "lancedb"))
    st.create(8)
    rng = np.random.default_rng(0)
    for k in range(3):
        st.append({"id": [f"{k}-{j}" for j in range(5)], "vector": rng.random((5, 8))})
    assert st.compact() is False
    assert st.table.stats()["fragment_stats"]["num_fragments"] == 3
    assert st.compact(min_small_fragments=3) is True
    assert st.table.stats()["fragment_stats"]["num_fragments"] == 1 and st.count() == 15
