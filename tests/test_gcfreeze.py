"""Start-up objects frozen out of full garbage collections, once per process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from lms_shared import SettingsError, load_settings

PROBE = textwrap.dedent(
    """
    import asyncio, gc, json, sys
    freezes = []
    real_freeze = gc.freeze
    gc.freeze = lambda: (freezes.append(gc.get_count()), real_freeze())[1]

    from lms_shared import create_service, load_settings
    from lms_shared.gcfreeze import freeze_startup_objects, frozen
    from lms_shared.testing import service_client

    async def main() -> None:
        settings = load_settings(gc_freeze=sys.argv[1] == "on")
        before = gc.get_freeze_count()
        async with service_client(create_service("probe", "1.0.0", settings=settings)):
            first = gc.get_freeze_count()
        async with service_client(create_service("again", "1.0.0", settings=settings)):
            pass
        later = freeze_startup_objects() if frozen() else -1
        print(json.dumps({"before": before, "first": first, "freezes": len(freezes),
                          "frozen": frozen(), "later": later}))

    asyncio.run(main())
    """
)


def probe(mode: str) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, timeout=120
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_started_service_freezes_its_start_up_objects_once() -> None:
    found = probe("on")
    assert found["before"] == 0
    assert found["first"] > 10_000  # the libraries, the app, its routes and schemas
    assert found["freezes"] == 1  # once per process: the second start froze nothing
    assert found["frozen"]
    assert found["later"] == 0


def test_lms_gc_freeze_false_leaves_the_collector_alone() -> None:
    found = probe("off")
    assert found == {"before": 0, "first": 0, "freezes": 0, "frozen": False, "later": -1}


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_a_bad_lms_gc_freeze_is_a_settings_error(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LMS_GC_FREEZE", value)
    with pytest.raises(SettingsError, match="LMS_GC_FREEZE"):
        load_settings()
