"""The command line: files, folders, pipelines, formats, and what it refuses to do."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import jpeg_bytes, photo, run_dequant


def make_jpeg(path, seed=0, size=(96, 128), quality=10):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(photo(*size, seed=seed), quality))
    return path


def test_version_and_help_do_not_import_torch():
    for flag in ("--version", "--help"):
        code = (
            "import sys; from dequant.cli import main; sys.argv = ['dequant', %r]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code in (0, None)\n"
            "assert 'torch' not in sys.modules, 'torch imported'\nprint('ok')" % flag
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_restore_one_file_to_png(cli, tmp_path):
    source = make_jpeg(tmp_path / "in.jpg")
    code, _, err = cli("restore", source, "-o", tmp_path / "out.png")
    assert code == 0, err
    out = Image.open(tmp_path / "out.png")
    assert out.format == "PNG" and out.size == (128, 96) and out.mode == "RGB"


def test_dequantize_alias_and_format_option(cli, tmp_path):
    source = make_jpeg(tmp_path / "in.jpg")
    make_jpeg(tmp_path / "also.jpg", seed=7)
    code, _, err = cli("dequantize", source, tmp_path / "also.jpg", "-o", tmp_path / "out", "--format", "webp")
    assert code == 0, err
    assert Image.open(tmp_path / "out" / "in.webp").format == "WEBP"


def test_folder_with_broken_files_restores_the_good_and_names_the_bad(cli, tmp_path):
    folder = tmp_path / "photos"
    make_jpeg(folder / "a.jpg", seed=1)
    make_jpeg(folder / "b.jpg", seed=2)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("not an image")
    (folder / "cut.jpg").write_bytes(jpeg_bytes(photo(seed=3))[:200])
    code, _, err = cli("restore", folder, "-o", tmp_path / "out")
    assert code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    for bad in ("empty.jpg", "notes.png", "cut.jpg"):
        assert sum(bad in line for line in err.splitlines()) == 1, err
    assert "Traceback" not in err


def test_recursive_mirrors_the_tree_and_plain_does_not_descend(cli, tmp_path):
    make_jpeg(tmp_path / "in" / "top.jpg")
    make_jpeg(tmp_path / "in" / "sub" / "deep.jpg", seed=4)
    assert cli("restore", tmp_path / "in", "-o", tmp_path / "flat")[0] == 0
    assert [p.name for p in (tmp_path / "flat").rglob("*.png")] == ["top.png"]
    assert cli("restore", tmp_path / "in", "-o", tmp_path / "tree", "-r")[0] == 0
    assert (tmp_path / "tree" / "sub" / "deep.png").is_file() and (tmp_path / "tree" / "top.png").is_file()


def test_existing_outputs_need_overwrite_or_skip(cli, tmp_path):
    source = make_jpeg(tmp_path / "in.jpg")
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")
    code, _, err = cli("restore", source, "-o", target)
    assert code == 1 and "exists" in err and target.read_bytes() == b"precious"
    assert cli("restore", source, "-o", target, "--skip-existing")[0] == 0
    assert target.read_bytes() == b"precious"
    assert cli("restore", source, "-o", target, "--overwrite")[0] == 0
    assert Image.open(target).format == "PNG"


def test_never_overwrites_an_input(cli, tmp_path):
    source = make_jpeg(tmp_path / "same.jpg")
    before = source.read_bytes()
    code, _, err = cli("restore", source, "-o", source, "--overwrite")
    assert code == 1 and "input" in err and source.read_bytes() == before


def test_usage_errors_exit_2(cli, tmp_path):
    a, b = make_jpeg(tmp_path / "a.jpg"), make_jpeg(tmp_path / "b.jpg")
    assert cli("restore", a, b, "-o", tmp_path / "one.png")[0] == 2  # several inputs, one file
    assert cli("restore", a, "-o", tmp_path / "x.png", "--format", "bmp")[0] == 2
    assert cli("restore", a, "-o", tmp_path / "x.png", "--format", "jpg")[0] == 2  # contradicts -o
    assert cli("restore", a, "-o", tmp_path / "x.png", "--model", "no-such-model")[0] == 2
    assert cli("restore", a, "-o", tmp_path / "x.png", "--precision", "fp16", "--device", "cpu")[0] == 2


def test_pipeline_stdin_to_stdout():
    data = jpeg_bytes(photo(seed=5))
    result = run_dequant("restore", "-", "-o", "-", input=data)
    assert result.returncode == 0, result.stderr
    assert Image.open(__import__("io").BytesIO(result.stdout)).size == (128, 96)


def test_quantize_writes_the_asked_quality(cli, tmp_path):
    photo().save(tmp_path / "clean.png")
    assert cli("quantize", tmp_path / "clean.png", "-o", tmp_path / "q.jpg", "-q", "30")[0] == 0
    assert cli("quantize", tmp_path / "clean.png", "-o", tmp_path / "g.jpg", "-q", "30", "--gray")[0] == 0
    from dequant.jpeg import file_quality

    q = Image.open(tmp_path / "q.jpg")
    assert file_quality(q) == 30 and q.mode == "RGB"
    assert Image.open(tmp_path / "g.jpg").mode == "L"
    # Identical to Pillow's own encoder at default settings: the field's test JPEGs.
    assert (tmp_path / "q.jpg").read_bytes() == jpeg_bytes(photo(), 30)


def test_models_json_lists_the_registry(cli):
    code, out, _ = cli("models", "--json")
    rows = json.loads(out)
    assert code == 0 and sum(r["default"] for r in rows) == 1
    for row in rows:
        assert {"name", "arch", "params", "file", "sha256", "default"} <= row.keys() and row["params"] > 0


def test_shards_together_make_exactly_the_single_run(cli, tmp_path):
    for i in range(7):
        make_jpeg(tmp_path / "in" / f"{i}.jpg", seed=i, size=(48, 64))
    assert cli("restore", tmp_path / "in", "-o", tmp_path / "single")[0] == 0
    for i in range(3):
        assert cli("restore", tmp_path / "in", "-o", tmp_path / "sharded", "--shard", f"{i}/3")[0] == 0
    single = {p.name: p.read_bytes() for p in (tmp_path / "single").iterdir()}
    sharded = {p.name: p.read_bytes() for p in (tmp_path / "sharded").iterdir()}
    assert single == sharded and len(single) == 7
    assert cli("restore", tmp_path / "in", "-o", tmp_path / "x", "--shard", "3/3")[0] == 2


def test_output_with_an_image_extension_dequant_cannot_write_is_a_usage_error(cli, tmp_path):
    source = make_jpeg(tmp_path / "in.jpg")
    for name in ("out.gif", "out.BMP", "out.heic"):
        code, _, err = cli("restore", source, "-o", tmp_path / name)
        assert code == 2 and err.count("\n") == 1, err
        assert "cannot write" in err and ".png" in err and ".webp" in err
        assert not (tmp_path / name).exists()


def test_models_table_fits_80_columns_and_long_has_the_descriptions():
    env = {"COLUMNS": "80", "TERM": "dumb"}
    table = run_dequant("models", env=env).stdout.decode()
    assert "dequant-content" in table and "(default)" in table and "27.43" in table
    assert max(len(line) for line in table.splitlines()) <= 80
    long = run_dequant("models", "--long", env=env).stdout.decode()
    assert "Compact quality-conditioned U-Net" in long and "bundled" in long
