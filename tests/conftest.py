from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = ROOT.parent / "shared" / "data" / "buildings_sample"


@pytest.fixture(scope="session")
def sample_dir():
    """The real sample in ../shared (skips the test cleanly when it is absent)."""
    if not (SHARED_SAMPLE / "building_data" / "src").is_dir():
        pytest.skip(f"real sample not found at {SHARED_SAMPLE}")
    return SHARED_SAMPLE
