import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def testdata() -> pathlib.Path:
    p = pathlib.Path(os.environ.get("KILN_TESTDATA", ROOT.parent / "shared" / "testdata"))
    assert (p / "models").is_dir(), f"test data not unpacked at {p} (set KILN_TESTDATA)"
    return p


@pytest.fixture(scope="session")
def example_model() -> pathlib.Path:
    return ROOT / "examples" / "tiny_classifier" / "model.onnx"
