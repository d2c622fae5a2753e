"""Core frames in the REAL App: from a core frame's modal, the "Open source video at this frame"
button switches to the video dataset and shows one clip of that video starting at the frame."""
import re

import pytest

import fiftyone as fo

from e2e.browser import open_dataset, shot, wait_grid
from test_video import videos  # noqa: F401 - the fixture

import visual_curation as vc

pytestmark = [pytest.mark.e2e]


@pytest.fixture()
def core_frames(videos):  # noqa: F811 - the fixture imported above
    name = "vc-e2e-videos"
    for n in (name, name + "-core-frames"):
        if fo.dataset_exists(n):
            fo.delete_dataset(n)
    vds = fo.Dataset(name, persistent=True)
    vds.add_samples([fo.Sample(filepath=str(videos[k])) for k in ("v1", "v2", "v3")])
    frames = vc.extract_core_frames(vds)
    frames._dataset.persistent = True
    yield vds, frames
    for n in (name + "-core-frames", name):
        if fo.dataset_exists(n):
            fo.delete_dataset(n)


def test_core_frame_opens_its_video_clip(page, app_url, core_frames, artifacts):
    vds, frames = core_frames
    assert len(vds) == 3 and len(frames) >= 3
    open_dataset(page, app_url, frames._dataset.name)
    page.locator("[data-cy=looker]").first.click()
    # the modal's action bar shows the placement as its icon (label as tooltip)
    # the modal's action bar shows the placement as its "movie" icon, just before fullscreen
    page.locator("[data-testid=FullscreenIcon]").first.wait_for(timeout=30_000)
    shot(page, artifacts, "19-core-frame-modal")
    clicked = page.evaluate("""() => {
        let el = document.querySelector('[data-testid=FullscreenIcon]');
        while (el && el.parentElement && el.parentElement.children.length < 3) el = el.parentElement;
        const prev = el && el.previousElementSibling;
        if (!prev) return false;
        (prev.querySelector('button,[role=button]') || prev).click();
        return true;
    }""")
    assert clicked
    page.wait_for_url(re.compile(re.escape(vds.name) + r"(?!-core-frames)"), timeout=60_000)
    wait_grid(page, 1)        # one clip, not the dataset's three videos
    page.wait_for_function(             # "1 clip": the clips view, not one video sample
        "() => /\\bclip\\b/.test(document.querySelector('[data-cy=entry-counts]').innerText)",
        timeout=30_000)
    page.get_by_text("Click the clip to play three_scenes.avi", exact=False).first.wait_for()
    shot(page, artifacts, "20-core-frame-opens-video-clip")
