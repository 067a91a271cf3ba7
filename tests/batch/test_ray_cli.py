"""`eradiff batch --engine ray` as a user runs it: the command starts its own local Ray and stops it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from .helpers import batch_cli, outputs, read_results

pytest.importorskip("ray")
pytest.importorskip("ray.data")


def test_command_on_ray_records_a_corrupt_image_and_a_wrong_aspect_mask_and_exits_1(dataset40, local_reference,
                                                                                     pixel_file, tmp_path):  # fmt: skip
    import ray

    assert not ray.is_initialized(), "this test checks the command's own local Ray"
    images, masks = (shutil.copytree(folder, tmp_path / folder.name) for folder in dataset40)
    (images / "im07.png").write_bytes((images / "im07.png").read_bytes()[:200])  # truncated
    Image.fromarray(np.full((36, 20), 255, np.uint8)).save(masks / "im21.png")  # another aspect ratio
    out = tmp_path / "out"
    result = batch_cli(images, masks, "-o", out, "--engine", "ray", "--workers", "2", "--batch-size", "3",
                       model=pixel_file)  # fmt: skip
    assert result.exit_code == 1, result.stderr
    assert not ray.is_initialized(), "the command stops the Ray it started"
    rows = {r["key"]: r for r in read_results(out / "results.jsonl")}
    assert len(rows) == 40
    failed = {k: r["error"] for k, r in rows.items() if r["status"] == "failed"}
    assert set(failed) == {"im07.png", "im21.png"}
    assert failed["im07.png"].startswith(f"image {str(images / 'im07.png')!r}: cannot be decoded")
    assert failed["im21.png"].endswith("is 20×36 but the image is 44×36: the aspect ratios differ")
    assert sum(r["status"] == "done" for r in rows.values()) == 38
    files = outputs(out)
    assert sorted(files) == sorted(set(local_reference) - {"im07.png", "im21.png"})
    assert all(files[name] == local_reference[name] for name in files)
    assert f"failed im07.png: {failed['im07.png']}" in result.stderr
    assert "Traceback" not in result.stderr
