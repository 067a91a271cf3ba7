"""eradiff eval: triples, method specs, the metrics engine and the command line."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from eradiff.cli import app
from eradiff.eval.methods import ClassicalMethod, MethodSpecError, build_method, parse_spec
from eradiff.eval.run import Metrics, evaluate
from eradiff.eval.triples import Triple, TripleError, load_triples, save_triples, synthesize_triples
from eradiff.train.sources import CutoutSource


def _folder_source(tmp_path):
    rng = np.random.default_rng(0)
    from PIL import Image

    tmp_path.mkdir(exist_ok=True)
    objs, bgs = tmp_path / "objects", tmp_path / "backgrounds"
    objs.mkdir(exist_ok=True)
    bgs.mkdir(exist_ok=True)
    for i in range(3):
        yy, xx = np.mgrid[:160, :200]
        bg = np.stack([(xx + 40 * i) % 256, (yy * 2) % 256, (xx + yy) % 256], -1).astype(np.uint8)
        Image.fromarray(bg).save(bgs / f"bg{i}.png")
        obj = np.zeros((40, 30, 4), np.uint8)
        obj[..., :3] = rng.integers(0, 255, 3)
        obj[5:35, 5:25, 3] = 255
        Image.fromarray(obj).save(objs / f"obj{i}.png")
    return CutoutSource.from_folders(objs, bgs)


def test_synthesized_triples_are_deterministic_and_exact(tmp_path):
    src = _folder_source(tmp_path)
    a = synthesize_triples(src, count=4, seed=3, max_side=128)
    b = synthesize_triples(_folder_source(tmp_path / "again"), count=4, seed=3, max_side=128)
    c = synthesize_triples(src, count=4, seed=4, max_side=128)
    for x, y in zip(a, b, strict=True):
        assert x.name == y.name and np.array_equal(x.image, y.image) and np.array_equal(x.mask, y.mask)
    assert any(not np.array_equal(x.image, z.image) for x, z in zip(a, c, strict=True))
    for t in a:
        assert max(t.image.shape[:2]) <= 128
        assert t.mask.any()
        assert np.array_equal(t.image[~t.mask], t.gt[~t.mask]), "outside the mask the input is the ground truth"
        assert not np.array_equal(t.image[t.mask], t.gt[t.mask])


def test_save_and_load_round_trip(tmp_path):
    triples = synthesize_triples(_folder_source(tmp_path), count=3, seed=0, max_side=96)
    folder = save_triples(triples, tmp_path / "set")
    loaded = load_triples(folder)
    assert [t.name for t in loaded] == sorted(t.name for t in triples)
    by_name = {t.name: t for t in triples}
    for t in loaded:
        ref = by_name[t.name]
        assert np.array_equal(t.image, ref.image) and np.array_equal(t.mask, ref.mask) and np.array_equal(t.gt, ref.gt)


def test_load_triples_errors(tmp_path):
    with pytest.raises(TripleError, match="missing sub-folder 'images/'"):
        load_triples(tmp_path)
    for k in ("images", "masks", "gt"):
        (tmp_path / k).mkdir()
    with pytest.raises(TripleError, match="no file stem"):
        load_triples(tmp_path)


@pytest.mark.parametrize(
    "spec,expect",
    [
        ("telea", ("telea", "telea", {})),
        ("eradiff=default", ("eradiff", "default", {})),
        ("w/o SRA=default:sra=false,steps=10", ("w/o SRA", "default", {"sra": False, "steps": 10})),
        ("s=runs/x/model.safetensors:strength=0.6", ("s", "runs/x/model.safetensors", {"strength": 0.6})),
        ("ns:radius=3", ("ns", "ns", {"radius": 3})),
    ],
)
def test_parse_spec(spec, expect):
    assert parse_spec(spec) == expect


def test_bad_specs():
    with pytest.raises(MethodSpecError, match="not key=value"):
        parse_spec("x=telea:radius")
    with pytest.raises(MethodSpecError, match="only 'radius'"):
        build_method("telea:steps=3")


def _oracle(name):
    class Oracle:
        def __init__(self):
            self.name = name
            self.gt = {}

        def __call__(self, image, mask):
            return self.gt[image.tobytes()]

    return Oracle()


@pytest.mark.slow
def test_evaluate_orders_an_oracle_above_telea(tmp_path):
    triples = synthesize_triples(_folder_source(tmp_path), count=3, seed=1, max_side=128)
    oracle = _oracle("oracle")
    oracle.gt = {t.image.tobytes(): t.gt for t in triples}
    metrics = Metrics.load(set_level=False)
    results = evaluate([oracle, ClassicalMethod("telea", "telea")], triples, metrics=metrics, keep_outputs=2)
    o, t = (r.summary for r in results)
    assert o["lpips_alex_box"] < 1e-6 and o["dists_box"] < 1e-3 and o["psnr_box"] == 100.0 and o["ssim_box"] > 0.999
    assert t["lpips_alex_box"] > o["lpips_alex_box"] and t["psnr_box"] < o["psnr_box"]
    assert o["leak_rate"] == 0.0
    assert len(results[0].outputs) == 2 and "fid" not in o


def test_cli_errors_are_one_line(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["eval", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == [
        "error: give exactly one of --triples, --manifest, or --objects with --backgrounds"
    ]
    res = runner.invoke(app, ["eval", "--triples", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1 and "missing sub-folder" in res.stderr


@pytest.mark.slow
def test_cli_runs_classical_methods(tmp_path):
    triples = synthesize_triples(_folder_source(tmp_path), count=3, seed=2, max_side=128)
    folder = save_triples(triples, tmp_path / "set")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        ["eval", "--triples", str(folder), "-m", "telea", "-m", "ns", "--no-fid", "--out", str(out), "--examples", "2"],
    )
    assert res.exit_code == 0, res.stderr
    doc = json.loads((out / "report.json").read_text())
    assert [m["name"] for m in doc["methods"]] == ["telea", "ns"]
    assert len(doc["methods"][0]["per_image"]) == 3
    assert (out / "figure.png").stat().st_size > 1000
    assert "| telea |" in (out / "table.md").read_text()


def test_triple_is_plain_data():
    t = Triple("a", np.zeros((4, 4, 3), np.uint8), np.ones((4, 4), bool), np.zeros((4, 4, 3), np.uint8))
    assert t.name == "a"
