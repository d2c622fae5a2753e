"""What every browser test does in the REAL App: open a dataset, read and wait for the grid's
count, run an operator from the command palette, read the values drawn on the tiles, take a
screenshot. One home for these, imported by the test modules."""
import re

PALETTE_INPUT = "input[placeholder*='Search operations']"
PROMPT = "[data-cy=operators-prompt-modal]"
COUNTS = "[data-cy=entry-counts]"


def shot(page, artifacts, name, settle_ms=0):
    """A screenshot ``test-artifacts/<name>.png``, ``settle_ms`` after the call (for
    thumbnails and plots still being drawn)."""
    if settle_ms:
        page.wait_for_timeout(settle_ms)
    page.screenshot(path=str(artifacts / f"{name}.png"))


def open_dataset(page, url, name):
    page.goto(f"{url}/datasets/{name}")
    page.wait_for_selector("[data-cy=looker]", timeout=90_000)
    page.wait_for_selector(COUNTS, timeout=30_000)
    try:
        page.get_by_text("Dismiss", exact=True).first.click(timeout=3_000)  # "Explore Enterprise"
    except Exception:  # noqa: BLE001 - not shown
        pass


def grid_count(page):
    """The number the grid's header shows (samples, or patches in a patches view)."""
    text = page.locator(COUNTS).first.inner_text()
    m = re.search(r"[\d,]+", text)
    return int(m.group(0).replace(",", "")) if m else None


def wait_grid(page, n, unit=None, timeout=60_000):
    """Until the grid's header shows ``n`` (``unit``: and counts e.g. "samples"/"patches")."""
    page.wait_for_function(
        """([n, unit]) => {
            const el = document.querySelector('[data-cy=entry-counts]');
            if (!el) return false;
            const m = el.innerText.replace(/,/g, '').match(/(\\d+)\\s*(\\w*)/);
            return m && parseInt(m[1]) === n && (!unit || m[2].startsWith(unit));
        }""", arg=[n, unit], timeout=timeout)


def whole_dataset(page, n, timeout=90_000):
    """Clears the view bar when a view is set (the App keeps the view an earlier test left,
    across datasets) and waits for the grid of all ``n`` samples."""
    page.wait_for_selector(COUNTS, timeout=60_000)
    if grid_count(page) != n:
        page.locator("[data-cy=btn-clear-view-bar]").click()
        wait_grid(page, n, timeout=timeout)


def blur(page):
    """Keys go to the App, not to a focused input (the palette opens on the backtick key)."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")


def open_operator(page, label, form=True):
    """The command palette (backtick key), filtered by ``label``, Enter on the operator (which
    opens its form, or runs at once when it has none)."""
    blur(page)
    page.keyboard.press("`")
    page.wait_for_selector(PALETTE_INPUT, timeout=15_000)
    page.keyboard.type(label)
    page.get_by_text(label, exact=True).first.wait_for(timeout=15_000)
    page.keyboard.press("Enter")
    if form:
        page.wait_for_selector(PROMPT, timeout=30_000)


def wait_executable(page):
    """Until the form is valid (its Execute button enabled)."""
    page.locator(PROMPT).get_by_role("button", name="Execute").wait_for(timeout=15_000)
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-cy=operators-prompt-modal] button')]
                  .some(b => b.innerText.trim() === 'Execute' && !b.disabled)""",
        timeout=30_000)


def execute(page):
    wait_executable(page)
    page.locator(PROMPT).get_by_role("button", name="Execute").click()


def looker_values(page, field):
    """The values of ``field`` shown on the grid's thumbnails, in grid order (the field must be
    made visible in the sidebar)."""
    titles = page.locator(f"[data-cy=looker] [title^='{field}: ']").evaluate_all(
        "els => els.map(e => e.getAttribute('title'))")
    return [t.split(": ", 1)[1] for t in titles]


def filter_value(page, field, value):
    """Filters the grid in the sidebar: ``field`` (a string or list-of-strings field) to
    ``value``, as a user does (the field's arrow, its search box, the value)."""
    # the field in the middle of the sidebar: its results list opens below it, on screen
    page.locator(f"[data-cy=sidebar-field-container-{field}]").first.evaluate(
        "e => e.scrollIntoView({block: 'center'})")
    page.locator(f"[data-cy=sidebar-field-arrow-enabled-{field}]").click()
    search = page.locator(f"[data-cy=selector-sidebar-search-{field}]")
    search.click()
    search.type(value)
    result = page.locator(f"[data-cy=selector-results-container-sidebar-search-{field}]"
                          ).get_by_text(value, exact=True)
    result.wait_for(timeout=15_000)
    result.click()


def show_field(page, field):
    box = page.locator(f"[data-cy=checkbox-{field}]")
    box.wait_for(timeout=30_000)
    box.click()
