"""Fixtures of the batch tests: a 40-image dataset and the local engine's outputs for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import batch_cli, outputs, write_dataset


@pytest.fixture(scope="session")
def dataset40(tmp_path_factory) -> tuple[Path, Path]:
    """40 images and masks (read-only for the tests: copy before changing them)."""
    return write_dataset(tmp_path_factory.mktemp("dataset40"), 40)


@pytest.fixture(scope="session")
def local_reference(dataset40, pixel_file, tmp_path_factory) -> dict[str, bytes]:
    """The 40 outputs of the local engine (the command), to compare other engines and orders with."""
    out = tmp_path_factory.mktemp("reference") / "out"
    result = batch_cli(*dataset40, "-o", out, model=pixel_file)
    assert result.exit_code == 0, result.stderr
    files = outputs(out)
    assert len(files) == 40
    return files
