"""The cluster panel without a browser: its logic (``visual_curation.panels``: ``stored``,
``statistics``, ``cards``, ``thumbnails``, ``actions``) on real datasets analysed with the
offline demo model (real MongoDB and LanceDB), and the panel itself executed through FiftyOne's
operator API exactly as the App calls it (``__method__`` events, panel state in, rendered schema
and triggered operations out)."""
import json
import os
import time
import urllib.parse
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import fiftyone as fo
from fiftyone import ViewField as F

import visual_curation as vc
from visual_curation.panels import cache
from visual_curation.panels.actions import MAX_SIMILAR, cluster_view, similar_view, tag_cluster
from visual_curation.panels.cards import build_cards
from visual_curation.panels.statistics import HIST_BINS, health, level_stats
from visual_curation.panels.stored import (NOT_GROUPED, analysed_patch_fields, clamp_level,
                                           level_meta, run_stamp, status,
                                           summaries)
from visual_curation.panels.thumbnails import ENV_THUMBS, N_THUMBS, THUMB_SIZE

PANEL_URI = "@visual-curation/curation/cluster_panel"


def plugin_cache_module():
    """The cache module of the copy of the package FiftyOne loaded the panel from (the plugin
    loader imports the plugin under its own package name, so its cache is not ``cache``)."""
    import sys

    import fiftyone.operators as foo

    panels = type(foo.get_operator(PANEL_URI)).__module__.rsplit(".", 1)[0]
    return sys.modules[f"{panels}.cache"]


def clear_caches():
    cache.clear()
    plugin_cache_module().clear()


# ------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module", autouse=True)
def thumbs_dir(tmp_root):
    """Crop thumbnails go to the test folder, never to the user's FiftyOne config dir."""
    old = os.environ.get(ENV_THUMBS)
    os.environ[ENV_THUMBS] = str(tmp_root / "panel-thumbs")
    yield Path(os.environ[ENV_THUMBS])
    if old is None:
        os.environ.pop(ENV_THUMBS, None)
    else:
        os.environ[ENV_THUMBS] = old


@pytest.fixture(scope="module")
def fm(fmnist_small, vc_helpers):
    """The 300-image Fashion-MNIST benchmark, embedded and analysed with model="demo"."""
    ds, truth = vc_helpers.load_bench_dataset(fmnist_small, "vc-test-panel")
    summary = vc.analyze(ds, label_field="ground_truth", model="demo", progress=False)
    clear_caches()
    yield SimpleNamespace(ds=ds, truth=truth, summary=summary)
    vc_helpers.cleanup(ds)


@pytest.fixture()
def objects(detection_dataset):
    """The shipped detection fixture, its objects analysed in object view."""
    vc.analyze(detection_dataset, patches_field="ground_truth", label_field="ground_truth",
               model="demo", progress=False)
    clear_caches()
    return detection_dataset


def _cluster_counts(view, level, patches_field=None):
    path = f"vc_cluster_{level}"
    if patches_field:
        ids = view.values(f"{patches_field}.detections.{path}")
        vals = [c for sub in ids for c in (sub or []) if c is not None]
    else:
        vals = [c for c in view.values(path) if c is not None]
    out = {}
    for c in vals:
        out[c] = out.get(c, 0) + 1
    return out


def _all_cards(view, level, patches_field=None, sort="size"):
    first = build_cards(view, level, sort, 0, patches_field, thumbnails=False)
    cards = list(first["cards"])
    for p in range(1, first["pages"]):
        cards += build_cards(view, level, sort, p, patches_field, thumbnails=False)["cards"]
    return first, cards


# ------------------------------------------------------------------------------ stored results

def test_summaries_are_read_per_level(fm):
    stored = summaries(fm.ds)
    assert sorted(stored) == [1, 2, 3, 4, 5]
    sizes = [len(stored[k]) for k in range(1, 6)]
    assert sizes == sorted(sizes), f"level 1 must be the loosest: {sizes}"
    assert sizes[0] < sizes[-1]
    for clusters in stored.values():
        for c in clusters:
            assert c["size"] > 0 and c["representatives"]
            assert len(c["representatives"]) <= c["size"]
    assert status(fm.ds) == ("ready", None)


def test_empty_state_names_the_operators_to_run(fmnist_dataset):
    ds, _ = fmnist_dataset
    state, msg = status(ds)
    assert state == "none"
    assert "Visual Curation: compute embeddings" in msg and "run analyses" in msg
    assert msg.index("compute embeddings") < msg.index("run analyses")
    sub = ds.limit(24)
    vc.compute_embeddings(sub, model="demo", progress=False)
    state, msg = status(ds)
    assert state == "embeddings"
    assert "Visual Curation: run analyses" in msg and "compute embeddings" not in msg


# ------------------------------------------------------------------------------------ the cards

def _split(cards, truth, first_single):
    """(grouped cards, the "not grouped" cards, the single-item cluster ids of ``truth``)."""
    single = {c for c, n in truth.items() if c >= first_single and n == 1}
    return ([c for c in cards if not c.get("not_grouped")],
            [c for c in cards if c.get("not_grouped")], single)


@pytest.mark.parametrize("level", [1, 3, 5])
def test_card_counts_match_the_view(fm, level):
    ds = fm.ds
    meta = level_meta(ds)[level]
    truth = _cluster_counts(ds, level)
    first, cards = _all_cards(ds.view(), level)
    grouped, loose, single = _split(cards, truth, meta["first_single"])
    assert first["clusters"] + first["not_grouped"] == len(truth)
    assert first["not_grouped"] == len(single) == meta["singletons"]
    assert first["items"] == sum(truth.values()) == len(ds)
    assert {c["id"]: c["count"] for c in grouped} == {
        c: n for c, n in truth.items() if c not in single}
    # the single images are one card, the last one
    assert len(loose) == bool(single) and (not loose or cards[-1] is loose[0])
    assert not loose or loose[0]["count"] == len(single)
    counts = [c["count"] for c in grouped]
    assert counts == sorted(counts, reverse=True), "largest first"
    assert f"{meta['similarity']:.2f}" in first["meaning"] and meta["name"] in first["meaning"]
    # a sidebar filter (here: one class) changes every count
    view = ds.match(F("ground_truth.label") == "sneaker")
    truth = _cluster_counts(view, level)
    first, cards = _all_cards(view, level)
    grouped, loose, single = _split(cards, truth, meta["first_single"])
    assert {c["id"]: c["count"] for c in grouped} == {
        c: n for c, n in truth.items() if c not in single}
    assert first["items"] == len(view)
    for c in grouped:
        assert [lab for lab, _ in c["labels"]] == ["sneaker"]
        assert c["labels"][0][1] == c["count"]


def test_strict_levels_gather_single_images_in_one_not_grouped_card(fm):
    ds = fm.ds
    meta = level_meta(ds)
    assert [meta[k]["similarity"] for k in range(1, 6)] == sorted(
        meta[k]["similarity"] for k in range(1, 6))
    res = build_cards(ds.view(), 5, page=10 ** 6)           # the last page
    card = res["cards"][-1]
    assert card["not_grouped"] and card["count"] == meta[5]["singletons"] > 0
    assert card["thumbs"] and all(t["url"] for t in card["thumbs"])
    shown = cluster_view(ds.view(), 5, NOT_GROUPED)
    assert len(shown) == meta[5]["singletons"]
    sizes = _cluster_counts(ds, 5)
    assert all(sizes[c] == 1 for c in shown.values("vc_cluster_5"))


def test_granularity_changes_the_cards_without_recomputing(fm):
    ds = fm.ds
    before = {f: ds.get_field(f) is not None for f in ("vc_cluster_1", "vc_cluster_5")}
    n1 = build_cards(ds.view(), 1, thumbnails=False)["clusters"]
    n5 = build_cards(ds.view(), 5, thumbnails=False)["clusters"]
    assert n1 < n5
    assert clamp_level(0) == 1 and clamp_level(9) == 5 and clamp_level("3") == 3
    assert before == {"vc_cluster_1": True, "vc_cluster_5": True}
    # the stored analysis is untouched (same run)
    assert run_stamp(ds) == run_stamp(ds)


def test_card_labels_thumbnails_and_stats(fm):
    ds = fm.ds
    res = build_cards(ds.view(), 2)
    stored = {str(c["id"]): c for c in summaries(ds)[2]}
    labels = dict(zip(*ds.values(["id", "ground_truth.label"])))
    paths = dict(zip(*ds.values(["id", "filepath"])))
    uniq = dict(zip(*ds.values(["id", "vc_uniqueness"])))
    for card in res["cards"]:
        members = set(ds.match(F("vc_cluster_2") == card["id"]).values("id"))
        # the 3 most frequent labels, with their counts
        true_counts = {}
        for i in members:
            true_counts[labels[i]] = true_counts.get(labels[i], 0) + 1
        assert 1 <= len(card["labels"]) <= 3
        assert [n for _, n in card["labels"]] == sorted(true_counts.values(), reverse=True)[:3]
        for lab, n in card["labels"]:
            assert true_counts[lab] == n
        # 4-6 thumbnails: the stored representatives (nearest the centroid), in their order
        reps = stored[str(card["id"])]["representatives"]
        ids = [t["id"] for t in card["thumbs"]]
        assert ids == [r for r in reps if r in members][:N_THUMBS]
        assert min(4, card["count"]) <= len(ids) <= 6
        for t in card["thumbs"]:
            assert t["id"] in members
            assert t["url"] == "/media?filepath=" + urllib.parse.quote(paths[t["id"]], safe="")
            assert urllib.parse.unquote(t["url"].split("filepath=", 1)[1]) == paths[t["id"]]
        mean_u = np.mean([uniq[i] for i in members if uniq[i] is not None])
        assert card["uniqueness"] == pytest.approx(mean_u, abs=1e-3)
        assert card["issues"] == len(ds.match(F("vc_cluster_2") == card["id"])
                                     .match(F("vc_issues").length() > 0))


def test_filtered_out_representatives_are_replaced(fm):
    ds = fm.ds
    stored = summaries(ds)[1]
    big = max(stored, key=lambda c: c["size"])
    hide = big["representatives"]
    view = ds.exclude(hide)
    card = next(c for c in build_cards(view, 1)["cards"] if c["id"] == big["id"])
    assert card["thumbs"], "a cluster whose representatives are all filtered out still shows items"
    assert not {t["id"] for t in card["thumbs"]} & set(hide)
    assert set(t["id"] for t in card["thumbs"]) <= set(view.values("id"))


@pytest.mark.parametrize("sort", ["uniqueness", "redundancy", "issues"])
def test_sort_orders(fm, sort):
    _, cards = _all_cards(fm.ds.view(), 4, sort=sort)
    assert all(not c.get("not_grouped") for c in cards[:-1]), "not grouped: always last"
    cards = [c for c in cards if not c.get("not_grouped")]
    if sort == "uniqueness":
        keys = [c["uniqueness"] for c in cards]
        assert keys == sorted(keys, reverse=True)
    elif sort == "redundancy":
        keys = [c["uniqueness"] for c in cards]
        assert keys == sorted(keys)
    else:
        keys = [c["issues"] for c in cards]
        assert keys == sorted(keys, reverse=True)
        assert keys[0] > 0


def test_pagination_covers_every_cluster_once(fm):
    ds = fm.ds
    full = build_cards(ds.view(), 5, page_size=1000, thumbnails=False)
    pages, seen = [], []
    p = 0
    while True:
        res = build_cards(ds.view(), 5, page=p, page_size=7, thumbnails=False)
        assert res["page"] == p and len(res["cards"]) <= 7
        seen += [c["id"] for c in res["cards"]]
        pages.append(res)
        p += 1
        if p >= res["pages"]:
            break
    assert seen == [c["id"] for c in full["cards"]]
    assert len(set(seen)) == len(seen) == full["clusters"] + bool(full["not_grouped"])
    beyond = build_cards(ds.view(), 5, page=10_000, page_size=7, thumbnails=False)
    assert beyond["page"] == beyond["pages"] - 1, "a page past the end shows the last one"


def test_health_summary(fm):
    ds = fm.ds
    h = health(ds.view())
    expected = ds.count_values("vc_issues")
    assert h["items"] == len(ds)
    assert {k: v for k, v in h["issues"].items() if v} == {
        k: v for k, v in expected.items() if k is not None and v}
    assert h["with_issues"] == len(ds.match(F("vc_issues").length() > 0))
    u = [x for x in ds.values("vc_uniqueness") if x is not None]
    assert sum(h["uniqueness"]["counts"]) == len(u)
    counts, _, _ = ds.histogram_values("vc_uniqueness", bins=HIST_BINS, range=[0, 1])
    assert abs(sum(abs(a - b) for a, b in zip(h["uniqueness"]["counts"], counts))) <= 2
    assert h["uniqueness"]["mean"] == pytest.approx(float(np.mean(u)), abs=1e-6)
    # one call returns the same numbers as the level scan with health
    both = level_stats(ds.view(), 3, with_health=True)
    assert both["health"] == h


# ---------------------------------------------------------------------------------- the actions

def test_cluster_view_keeps_the_filters_and_tagging(fm):
    ds = fm.ds
    base = ds.match(F("ground_truth.label").is_in(["sneaker", "sandal", "ankle boot"]))
    card = build_cards(base, 2, thumbnails=False)["cards"][0]
    view = cluster_view(base, 2, card["id"])
    assert len(view) == card["count"]
    assert set(view.values("vc_cluster_2")) == {card["id"]}
    assert set(view.values("ground_truth.label")) <= {"sneaker", "sandal", "ankle boot"}
    n = tag_cluster(base, 2, card["id"], "panel-test-tag")
    assert n == card["count"] == ds.count_sample_tags().get("panel-test-tag")
    ds.untag_samples("panel-test-tag")


def test_find_similar_from_a_cluster(fm):
    ds = fm.ds
    card = build_cards(ds.view(), 3, thumbnails=False)["cards"][0]
    view = similar_view(ds.view(), 3, card["id"], k=40)
    ids = view.values("id")
    assert len(ids) == 40
    members = set(ds.match(F("vc_cluster_3") == card["id"]).values("id"))
    top = ids[:min(10, len(members))]
    assert sum(i in members for i in top) >= 0.7 * len(top), \
        "the nearest samples to a cluster's centre are mostly its own members"


# ---------------------------------------------------------------------------------- object view

def test_object_view_cards_crops_and_patches(objects, thumbs_dir):
    ds = objects
    pf = "ground_truth"
    assert "ground_truth" in analysed_patch_fields(ds)
    assert status(ds, pf) == ("ready", None)
    n_objects = sum(len(d or []) for d in ds.values("ground_truth.detections"))
    clustered = sum(_cluster_counts(ds, 1, pf).values())
    assert 0 < clustered <= n_objects  # objects too small to embed get no cluster
    for level in (1, 5):
        first, cards = _all_cards(ds.view(), level, pf)
        assert first["items"] == clustered
        assert {c["id"]: c["count"] for c in cards} == _cluster_counts(ds, level, pf)
        assert first["kind"] == "objects"
    res = build_cards(ds.view(), 2, patches_field=pf)
    label_ids = {i for sub in ds.values("ground_truth.detections.id") for i in sub}
    for card in res["cards"]:
        assert card["thumbs"]
        for t in card["thumbs"]:
            assert t["id"] in label_ids
            crop = Path(t["crop"])
            assert crop.parent.parent == thumbs_dir and crop.exists()
            assert t["url"] == "/media?filepath=" + urllib.parse.quote(str(crop), safe="")
            with Image.open(crop) as im:
                assert max(im.size) <= THUMB_SIZE
                with Image.open(t["filepath"]) as full:
                    assert im.size != full.size, "a crop, not the full image"
    card = res["cards"][0]
    patches = cluster_view(ds.view(), 2, card["id"], pf)
    assert patches._is_patches
    assert len(patches) == card["count"]
    assert set(patches.values("ground_truth.vc_cluster_2")) == {card["id"]}
    h = health(ds.view(), pf)
    assert h["items"] == n_objects and h["kind"] == "objects"
    # image view and object view keep their own results
    assert status(ds)[0] in ("none", "embeddings")


# ----------------------------------------------------------------- the panel, as the App runs it

def _panel(dataset, method=None, state=None, view=None, fresh=True, **params):
    """Runs one panel event exactly as the App does; returns (rendered schema, triggered ops).
    ``fresh``: as to a panel that shows nothing yet (else an output identical to the last one
    sent is not sent again)."""
    import fiftyone.operators as foo

    from visual_curation.panels import sent

    if fresh:
        sent.forget("test-panel")

    st = {"controls": {"mode": "images", "sort": "size", "tag": ""},
          "footer": {"level": 1}, "page": 0}
    for k, v in (state or {}).items():
        if isinstance(v, dict) and isinstance(st.get(k), dict):
            st[k] = {**st[k], **v}
        else:
            st[k] = v
    ctx = dict(dataset=dataset, params={"panel_id": "test-panel", "panel_state": st,
                                        "__method__": method or "on_change_view", **params})
    if view is not None:
        ctx["view"] = view
    res = foo.execute_operator(PANEL_URI, ctx=ctx)
    res.raise_exceptions()
    reqs = res.executor.to_json()["requests"] if res.executor else []
    ops = [(r.get("operator_uri"), r.get("params") or {}) for r in reqs]
    outputs = [p for u, p in ops if u == "show_panel_output"]
    schema = outputs[-1] if outputs else None
    return schema, ops


def _texts(schema):
    return json.dumps(schema, ensure_ascii=False)


def test_panel_is_registered_and_in_the_manifest():
    import yaml
    import fiftyone.operators as foo

    manifest = yaml.safe_load((Path(__file__).resolve().parents[1] / "fiftyone.yml").read_text())
    assert "cluster_panel" in manifest["panels"]
    assert PANEL_URI in [o.uri for o in foo.list_operators()]


def _patched_state(ops):
    out = {}
    for u, p in ops:
        if u == "patch_panel_state":
            out.update(p.get("state") or p)
    return out


def test_settings_survive_closing_and_reopening_the_panel(fm):
    """Level, sort and page are kept per dataset (FiftyOne's execution store): a panel opened
    again, or after a page reload, starts where the user left it."""
    from fiftyone.operators.store import ExecutionStore

    from visual_curation.panels.cards import SORTS
    from visual_curation.panels.clusters import SETTINGS_STORE

    ds = fm.ds
    store = ExecutionStore.create(SETTINGS_STORE, ds._doc.id)
    sort = next(k for k in SORTS if k != "size")
    try:
        _, ops = _panel(ds, "on_load")
        assert _patched_state(ops)["footer"]["level"] == clamp_level(None)  # never set: default
        _panel(ds, "on_level", state={"footer": {"level": 4}, "controls": {"sort": sort}})
        _panel(ds, "on_page", state={"footer": {"level": 4}, "controls": {"sort": sort}},
               page=1)
        _, ops = _panel(ds, "on_load")           # a new panel: its state starts empty
        st = _patched_state(ops)
        assert st["footer"]["level"] == 4 and st["controls"]["sort"] == sort
        assert st["page"] == 1 and st["selected"] is None
        schema, _ = _panel(ds, "on_load", state=st)
        assert "clusters** at granularity 4" in _texts(schema)
    finally:
        store.clear()


def test_panel_renders_cards_knob_health_and_actions(fm):
    clear_caches()
    schema, _ = _panel(fm.ds, "on_load")
    blob = _texts(schema)
    n1 = build_cards(fm.ds.view(), 1, thumbnails=False)
    assert f"**{n1['clusters']} clusters** at granularity 1" in blob
    assert blob.count('"ImageView"') >= 4 * min(4, len(n1["cards"]))
    assert '"SliderView"' in blob and '"PlotlyView"' in blob and "Dataset health" in blob
    for c in n1["cards"]:
        assert f"**Cluster {c['id']}** — **{c['count']}** images" in blob
    # moving the knob to "stricter": more clusters, from the stored levels
    clear_caches()
    schema, _ = _panel(fm.ds, "on_level", state={"footer": {"level": 5}}, value=5)
    n5 = build_cards(fm.ds.view(), 5, thumbnails=False)
    assert f"**{n5['clusters']} clusters** at granularity 5" in _texts(schema)
    assert n5["clusters"] > n1["clusters"]


def test_panel_sort_and_pages(fm):
    ds = fm.ds
    clear_caches()
    by_issues = build_cards(ds.view(), 4, "issues", thumbnails=False)
    schema, _ = _panel(ds, "on_sort", state={"controls": {"sort": "issues"},
                                            "footer": {"level": 4}}, value="issues")
    blob = _texts(schema)
    first = by_issues["cards"][0]
    assert blob.index(f"**Cluster {first['id']}** —") < blob.index(
        f"**Cluster {by_issues['cards'][1]['id']}** —")
    assert f"Page 1 / {by_issues['pages']}" in blob and by_issues["pages"] > 1
    schema, ops = _panel(ds, "on_page", state={"footer": {"level": 4}, "page": 0}, page=1)
    assert any(u == "patch_panel_state" and (p.get("state") or {}).get("page") == 1
               for u, p in ops)
    page2 = build_cards(ds.view(), 4, "size", 1, thumbnails=False)
    blob = _texts(schema)
    assert f"Page 2 / {page2['pages']}" in blob
    assert all(f"**Cluster {c['id']}** —" in blob for c in page2["cards"])


def test_an_unchanged_render_is_not_sent_again(fm):
    """The App redraws every output it gets: an event that changes nothing the panel shows
    (a repeated "view changed", a slider's change on first draw) sends no output; a change, or
    a panel (re)opened, does."""
    from visual_curation.panels import sent

    sent.forget("test-panel")
    first, _ = _panel(fm.ds, "on_change_view", state={"footer": {"level": 2}})
    again, ops = _panel(fm.ds, "on_change_view", state={"footer": {"level": 2}}, fresh=False)
    assert first is not None and again is None
    assert not any(u == "show_panel_output" for u, _ in ops)
    moved, _ = _panel(fm.ds, "on_level", state={"footer": {"level": 3}}, fresh=False)
    assert moved is not None and "granularity 3" in _texts(moved)
    reopened, _ = _panel(fm.ds, "on_load", state={"footer": {"level": 3}}, fresh=False)
    assert reopened is not None
    # a knob move that leaves the page as it was patches no state (each patch makes the
    # App persist its spaces and reload)
    _, ops = _panel(fm.ds, "on_level", state={"footer": {"level": 4}, "page": 0})
    assert not any(u == "patch_panel_state" for u, _ in ops)
    sent.forget("test-panel")


def test_panel_render_time(fm):
    """The render of one event (cold: nothing cached) on this small dataset; the 70k-sample
    number is measured by test_panel_render_time_70k (opt-in)."""
    clear_caches()
    t = time.perf_counter()
    _panel(fm.ds, "on_level", state={"footer": {"level": 4}}, value=4)
    assert time.perf_counter() - t < 5.0


def test_panel_card_click_sets_the_grid_and_keeps_the_base(fm):
    ds = fm.ds
    base = ds.match(F("ground_truth.label") != "bag")
    card = build_cards(base, 2, thumbnails=False)["cards"][0]
    schema, ops = _panel(ds, "on_open", view=base, state={"footer": {"level": 2}},
                         cluster=card["id"], level=2)
    sets = [p for u, p in ops if u == "set_view"]
    assert sets, ops
    grid = fo.DatasetView._build(ds, sets[-1]["view"])
    assert len(grid) == card["count"]
    assert set(grid.values("vc_cluster_2")) == {card["id"]}
    assert "bag" not in set(grid.values("ground_truth.label")), "the filters keep applying"
    patched = {}
    for u, p in ops:
        if u == "patch_panel_state":
            patched.update(p.get("state") or p)
    assert patched.get("applied") and patched.get("selected", {}).get("id") == card["id"]
    # the App now shows the cluster; the cards are still counted on the view it came from
    state = {"footer": {"level": 2}, "applied": patched["applied"],
             "base_view": patched["base_view"], "selected": patched["selected"]}
    schema, _ = _panel(ds, "on_change_view", view=grid, state=state)
    blob = _texts(schema)
    n = build_cards(base, 2, thumbnails=False)["clusters"]
    assert f"**{n} clusters** at granularity 2" in blob
    assert f"showing cluster {card['id']}" in blob and "Show all" in blob


def test_panel_tag_and_similar_actions(fm):
    ds = fm.ds
    card = build_cards(ds.view(), 1, thumbnails=False)["cards"][-1]
    _, ops = _panel(ds, "on_tag", state={"controls": {"tag": "panel-ui-tag"}},
                    cluster=card["id"], level=1)
    assert ds.count_sample_tags().get("panel-ui-tag") == card["count"]
    assert any(u == "notify" for u, _ in ops)
    ds.untag_samples("panel-ui-tag")
    _, ops = _panel(ds, "on_similar", cluster=card["id"], level=1, count=card["count"])
    sets = [p for u, p in ops if u == "set_view"]
    assert sets
    grid = fo.DatasetView._build(ds, sets[-1]["view"])
    assert len(grid) == min(max(50, 2 * card["count"]), MAX_SIMILAR, len(ds))


def test_panel_empty_state(fmnist_dataset):
    ds, _ = fmnist_dataset
    schema, _ = _panel(ds, "on_load")
    blob = _texts(schema)
    assert "Visual Curation: compute embeddings" in blob
    assert "Visual Curation: run analyses" in blob
    assert "@visual-curation/curation/compute_embeddings" in blob
    assert '"ImageView"' not in blob


def test_panel_object_view(objects):
    schema, _ = _panel(objects, "on_mode", state={"controls": {"mode": "objects"}},
                       value="objects")
    blob = _texts(schema)
    assert "Object view" in blob and "objects in view" in blob
    assert "/media?filepath=" in blob and "panel-thumbs" in blob


# ------------------------------------------------------------------------ 70k render (opt-in)

@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("VC_PANEL_BENCH"),
                    reason="builds a 70,000-sample dataset (~1 min): set VC_PANEL_BENCH=1")
def test_panel_render_time_70k():
    """Server time of the panel's events on 70k samples (10/50/250/1000/5000 clusters): a knob
    move reads stored levels (a cache hit once the other levels were computed in the
    background, else one aggregation); a new view costs one scan (cards + health)."""
    name = "vc-test-panel-70k"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = synthetic_dataset(name, 70_000)

    def event(method, level, **kw):
        t = time.perf_counter()
        _panel(ds, method, state={"footer": {"level": level}}, value=level, **kw)
        return time.perf_counter() - t

    mod = plugin_cache_module()

    def settle():
        while mod.warming():
            time.sleep(0.05)

    try:
        cold, hit, miss = [], [], []
        for level in (1, 3, 5):
            settle()
            mod.clear()
            cold.append(event("on_change_view", level))
            settle()
            hit.append(event("on_level", level % 5 + 1))
            mod.clear("level", "cards")
            miss.append(event("on_level", level))
            settle()
        med = {k: round(1000 * float(np.median(v))) for k, v in
               (("new view", cold), ("knob (prefetched)", hit), ("knob (one scan)", miss))}
        print("70k panel event, median ms (operator API included):", med)
        assert med["knob (prefetched)"] < 300 and med["knob (one scan)"] < 1000
    finally:
        settle()
        fo.delete_dataset(name)


def synthetic_dataset(name, n, ks=(10, 50, 250, 1000, 5000), seed=0):
    """``n`` samples with ``vc_cluster_1..5`` (skewed sizes), uniqueness and issues set in bulk
    with ``set_values``, and an analysis run record holding the per-level summaries."""
    from visual_curation.core import runs as vcr
    from visual_curation.core.analyze import analysis_run_key

    rng = np.random.default_rng(seed)
    classes = ["t-shirt", "trouser", "pullover", "dress", "coat",
               "sandal", "shirt", "sneaker", "bag", "ankle boot"]
    ds = fo.Dataset(name)
    ds.add_samples([fo.Sample(filepath=f"/nonexistent/img{i:06d}.png",
                              ground_truth=fo.Classification(label=classes[i % 10]))
                    for i in range(n)], progress=False)
    ids = ds.values("id")
    levels = {}
    for lvl, k in enumerate(ks, 1):
        lab = rng.zipf(1.3, n) % k
        ds.set_values(f"vc_cluster_{lvl}", lab.tolist())
        order = np.argsort(lab, kind="stable")
        bounds = np.searchsorted(lab[order], np.arange(k + 1))
        levels[str(lvl)] = [dict(id=int(c), size=int(bounds[c + 1] - bounds[c]),
                                 representatives=[ids[j] for j in order[bounds[c]:bounds[c] + 6]],
                                 top_labels=[[classes[c % 10], int(bounds[c + 1] - bounds[c])]])
                            for c in range(k) if bounds[c + 1] > bounds[c]]
    ds.set_values("vc_uniqueness", rng.random(n).tolist())
    names = np.array(["duplicate", "mislabel", "outlier", "blur", "dark", "bright"])
    ds.set_values("vc_issues", [list(names[rng.random(6) < 0.03]) for _ in range(n)])
    vcr.save(ds, analysis_run_key(None), vcr.METHOD_ANALYSIS,
             dict(fingerprint="synthetic", analyses=["clusters"], label_field="ground_truth",
                  patches_field=None),
             results=dict(summary={}, details={"clusters": {"levels": levels}}))
    return ds
