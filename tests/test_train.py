"""dequant train: every architecture trains and exports; resume is exact; DDP runs on gloo."""

import json
import os
import signal
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import needs_feature_weights, photo
from dequant import archs, checkpoints, data, degradations, train, weights
from dequant.archs.discriminators import DISCRIMINATORS

TINY_ARCH = {
    "qunet": "arch_config={widths=[8,8,8], blocks=[1,1,1], cond_dim=8}",
    "hourglass": "arch_config={widths=[8,8,8], repeats=2}",
    "dequantizernet": "arch_config={width=8, blocks=1}",
    "arcnn-plus": "arch_config={width=8}",
    "galteri": "arch_config={width=8, blocks=1}",
    "ced": "arch_config={widths=[8,8]}",
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for split, count in (("train", 6), ("val", 2)):
        (root / split).mkdir()
        for i in range(count):
            photo(96, 112, seed=100 * len(split) + i).save(root / split / f"{i}.png")
    return root


def train_command(folders, out, *settings, steps=4):
    return [sys.executable, "-m", "dequant", "train", "--data", str(folders / "train"), "--val", str(folders / "val"),
            "--out", str(out), "--steps", str(steps), "--set", "batch=2", "--set", "crop=48", "--set", "val_images=1",
            "--set", "val_every=2", "--set", "checkpoint_every=2", *[a for s in settings for a in ("--set", s)]]


def test_every_architecture_is_tiny_configured():
    assert set(TINY_ARCH) == set(archs.ARCHS), "give each registered architecture a tiny test config"


GAN_SETTINGS = [
    (),  # content losses only
    ("adversarial=0.01", 'discriminator="patchgan"', 'adversarial_form="logfree"', "warmup_steps=1", "d_stop_step=3",
     "perceptual=0.1"),
    ("adversarial=0.01", 'discriminator="subpatch"', 'adversarial_form="bce"', "ssim=1.0", "ema_decay=0.5", "lpips_vgg=0.5"),
    ("adversarial=0.01", 'discriminator="global"', 'adversarial_form="hinge"', "mse=1.0", "l1=0.0", "l1_lowpass=2.0"),
]


# Every architecture with content losses; every GAN setting once (the discriminators do not depend on the arch).
def uses_feature_networks(settings) -> bool:
    return any(s.startswith(("perceptual=", "lpips_vgg=")) for s in settings)


RUNS = [(arch, ()) for arch in sorted(TINY_ARCH)] + [
    pytest.param("qunet", settings, marks=[needs_feature_weights] if uses_feature_networks(settings) else [])
    for settings in GAN_SETTINGS[1:]]
RUN_IDS = [f"{arch}-content" for arch in sorted(TINY_ARCH)] + ["qunet-patchgan", "qunet-subpatch", "qunet-global"]


@pytest.mark.parametrize("arch, settings", RUNS, ids=RUN_IDS)
def test_trains_exports_and_restores(folders, tmp_path, arch, settings):
    out = tmp_path / "run"
    result = subprocess.run(train_command(folders, out, f'arch="{arch}"', TINY_ARCH[arch], *settings),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    entry = (out / "weights.toml").read_text()
    assert f'arch = "{arch}"' in entry and "sha256" in entry and "dequant train" in entry
    photo(64, 64).save(tmp_path / "in.jpg", quality=10)
    restored = subprocess.run([sys.executable, "-m", "dequant", "restore", str(tmp_path / "in.jpg"), "-o",
                               str(tmp_path / "out.png"), "--model", str(out / "model.safetensors")],
                              capture_output=True, text=True, timeout=120)
    assert restored.returncode == 0, restored.stderr


RESUME_SETTINGS = (TINY_ARCH["qunet"], "adversarial=0.01", 'discriminator="subpatch"', "ema_decay=0.5", "log_every=1",
                   "val_every=5", "double_fraction=0.5", "shift_fraction=0.5", "resize_fraction=0.5", "table_fraction=0.3")


def run_until_step(command: list, step: int, signum: int) -> subprocess.Popen:
    """Start a training command and send it `signum` right after `step` was logged."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith(f"step {step}/"):
            process.send_signal(signum)
            break
    process.wait(timeout=60)
    return process


@pytest.mark.parametrize("signum,checkpoint_every", [(signal.SIGKILL, 1), (signal.SIGTERM, 100)], ids=["SIGKILL", "SIGTERM"])
def test_killed_and_resumed_run_ends_with_the_same_weights(folders, tmp_path, signum, checkpoint_every):
    """SIGKILL: the last checkpoint is the resume point. SIGTERM (a session's end, `kill`): the run stops after the
    step in progress and saves it, though no checkpoint was due (checkpoint_every 100)."""
    settings = (*RESUME_SETTINGS, f"checkpoint_every={checkpoint_every}")
    steps = 20
    subprocess.run(train_command(folders, tmp_path / "straight", *settings, steps=steps), check=True,
                   capture_output=True, timeout=300)

    killed = tmp_path / "killed"
    process = run_until_step(train_command(folders, killed, *settings, steps=steps), 10, signum)
    state = torch.load(killed / "last.pt", weights_only=True)
    assert 1 <= state["step"] < steps and not (killed / "model.safetensors").exists()
    if signum == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == 128 + signum and state["step"] >= 10
        assert "checkpoint saved: continue with --resume" in process.stderr.read()

    result = subprocess.run(train_command(folders, killed, *settings, steps=steps) + ["--resume"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "resumed" in result.stdout, result.stderr
    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    last_a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    last_b = torch.load(killed / "last.pt", weights_only=True)
    for part in ("generator", "disc", "ema"):
        assert all(torch.equal(last_a[part][k], last_b[part][k]) for k in last_a[part])


def test_an_ema_turned_on_at_resume_starts_from_the_weights_reached(folders, tmp_path):
    run = tmp_path / "run"
    subprocess.run(train_command(folders, run, TINY_ARCH["qunet"], steps=2), check=True, capture_output=True, timeout=300)
    reached = torch.load(run / "last.pt", weights_only=True)
    assert "ema" not in reached
    result = subprocess.run(train_command(folders, run, TINY_ARCH["qunet"], "ema_decay=0.5", steps=4) + ["--resume"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "EMA of the generator (decay 0.5) starts at step 2" in result.stdout, result.stderr
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["step"] == 4 and set(state["ema"]) == set(reached["generator"])
    assert any(not torch.equal(state["ema"][k], reached["generator"][k]) for k in state["ema"])  # it moved on


def test_a_grown_run_resumes_from_the_weights_reached(folders, tmp_path):
    """scripts/grow-run.py adds blocks that start as the identity; the resumed run ignores `init` (its own
    weights are in last.pt) and trains the grown network on."""
    run, grown = tmp_path / "run", tmp_path / "grown"
    subprocess.run(train_command(folders, run, TINY_ARCH["qunet"], "ema_decay=0.5", steps=2), check=True,
                   capture_output=True, timeout=300)
    weights.save(archs.build("qunet", {}), tmp_path / "init.safetensors", {"arch": "qunet", "config": "{}"})
    script = Path(__file__).parents[1] / "scripts" / "grow-run.py"
    subprocess.run([sys.executable, str(script), str(run), str(grown), "--blocks", "1,1,2"], check=True, timeout=120)
    before = torch.load(grown / "last.pt", weights_only=True)
    assert not before["generator"]["middle.blocks.1.conv2.weight"].any() and before["step"] == 2
    assert torch.equal(before["ema"]["middle.blocks.1.conv1.weight"], before["generator"]["middle.blocks.1.conv1.weight"])
    bigger = "arch_config={widths=[8,8,8], blocks=[1,1,2], cond_dim=8}"
    result = subprocess.run(train_command(folders, grown, bigger, f'init="{tmp_path / "init.safetensors"}"',
                                          "ema_decay=0.5", steps=4) + ["--resume"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "resumed" in result.stdout, result.stderr
    after = torch.load(grown / "last.pt", weights_only=True)
    assert after["step"] == 4 and after["generator"]["middle.blocks.1.conv2.weight"].any()  # the new block learns


def test_two_process_ddp_on_gloo(folders, tmp_path):
    out = tmp_path / "ddp"
    command = train_command(folders, out, TINY_ARCH["qunet"], "adversarial=0.01", "threads=1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *command[1:]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 process(es)" in result.stdout and (out / "model.safetensors").is_file()


def test_config_is_type_checked(folders, tmp_path):
    for bad in ("batch=ten", "no_such_setting=1", 'discriminator="huge"'):
        result = subprocess.run(train_command(folders, tmp_path / "bad", bad), capture_output=True, text=True)
        assert result.returncode == 2 and "Traceback" not in result.stderr, (bad, result.stderr)
    config = tmp_path / "config.toml"
    config.write_text("steps = 2\nval_every = 1\n" + TINY_ARCH["qunet"].replace("arch_config=", "arch_config = ") + "\n")
    result = subprocess.run(train_command(folders, tmp_path / "toml") + ["--config", str(config)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_set_takes_toml_values_and_bare_words_as_strings():
    cfg = train.load_config(None, ["perceptual_layer=conv5_2", "lr=1e-4", "val_qualities=[10, 40]", 'select="lpips"'])
    assert (cfg.perceptual_layer, cfg.lr, cfg.val_qualities, cfg.select) == ("conv5_2", 1e-4, (10, 40), "lpips")
    with pytest.raises(ValueError, match="steps wants int"):
        train.load_config(None, ["steps=ten"])


def test_a_config_is_read_over_its_base(tmp_path):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "shared.toml").write_text("quality_min = 20\ndouble_fraction = 0.4\nsteps = 100\n")
    (tmp_path / "run.toml").write_text('base = "recipes/shared.toml"\nsteps = 200\n')
    cfg = train.load_config(tmp_path / "run.toml", ["double_fraction=0.5"])
    assert (cfg.degradation.quality_min, cfg.steps, cfg.degradation.double_fraction) == (20, 200, 0.5)  # file over base, --set over file
    (tmp_path / "recipes" / "shared.toml").write_text('base = "../run.toml"\n')
    with pytest.raises(ValueError, match="includes itself"):
        train.load_config(tmp_path / "run.toml", [])
    (tmp_path / "run.toml").write_text('base = "missing.toml"\n')
    with pytest.raises(ValueError, match="no base file"):
        train.load_config(tmp_path / "run.toml", [])
    (tmp_path / "run.toml").write_text('base = "recipes/shared.toml"\n')
    (tmp_path / "recipes" / "shared.toml").write_text("steps = \n")
    with pytest.raises(ValueError, match="shared.toml: "):  # names the file that does not parse
        train.load_config(tmp_path / "run.toml", [])


@needs_feature_weights
def test_select_lpips_exports_the_checkpoint_with_the_lowest_val_lpips(folders, tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(train_command(folders, out, 'arch="qunet"', TINY_ARCH["qunet"], 'select="lpips"',
                                          "log_every=1", "lr=0.05", steps=6),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    scores = {}  # step -> (model LPIPS, JPEG LPIPS) from lines like "step 2  val PSNR ...  LPIPS 0.41 (JPEG 0.40)"
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith("step ") and " val PSNR " in line:
            words = line.split()
            lpips_at = words.index("LPIPS")
            scores[int(words[1])] = (float(words[lpips_at + 1]), float(words[lpips_at + 3].rstrip(")")))
    assert sorted(scores) == [2, 4, 6]
    assert len({jpeg for _, jpeg in scores.values()}) == 1, "the JPEG bar is the same at every validation"
    best_step = min(scores, key=lambda s: scores[s][0])
    metadata = weights.read_metadata(out / "model.safetensors")
    assert int(metadata["steps"]) == best_step
    assert float(metadata["val_lpips"]) == pytest.approx(scores[best_step][0], abs=1e-4)
    assert f"val_lpips = {metadata['val_lpips']}" in (out / "weights.toml").read_text()


def test_precision_follows_the_machine_of_each_stretch(folders, tmp_path, monkeypatch):
    """auto takes bf16 where the CPU runs it natively; a run resumed on a CPU without it goes on in fp32,
    and the log and the checkpoint record both stretches."""
    from dequant import runtime

    cfg = train.load_config(None, [TINY_ARCH["qunet"], "batch=2", "crop=48", "val_images=1", "val_every=2",
                                   "checkpoint_every=2", "steps=2"])
    lines = []
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    train.train(cfg, [folders / "train"], [folders / "val"], tmp_path / "run", False, "test", log=lines.append)
    assert any(line.startswith("precision bf16 from step 0") for line in lines)
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    cfg = train.load_config(None, [TINY_ARCH["qunet"], "batch=2", "crop=48", "val_images=1", "val_every=2",
                                   "checkpoint_every=2", "steps=4"])
    train.train(cfg, [folders / "train"], [folders / "val"], tmp_path / "run", True, "test", log=lines.append)
    assert any(line.startswith("precision fp32 from step 2") for line in lines)
    assert "stretches so far: step 0: bf16; step 2: fp32" in lines
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert [s["precision"] for s in json.loads(state["stretches"])] == ["bf16", "fp32"] and state["seconds"] > 0


def test_qunet_conditioned_on_tables_trains_on_real_world_jpegs(folders, tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(train_command(folders, out, TINY_ARCH["qunet"][:-1] + ', condition="tables"}',
                                          "double_fraction=0.5", "table_fraction=0.5"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "double" in result.stdout and "tables" in result.stdout  # val reports each real-world kind
    assert json.loads(weights.read_metadata(out / "model.safetensors")["config"])["condition"] == "tables"
    photo(64, 64).save(tmp_path / "in.jpg", quality=10)
    backends = ("torch", "onnxruntime") if find_spec("onnxruntime") else ("torch",)  # onnx: test_onnx.py says why
    for backend in backends:  # the file's tables reach the generator on both
        restored = subprocess.run([sys.executable, "-m", "dequant", "restore", str(tmp_path / "in.jpg"), "-o",
                                   str(tmp_path / f"{backend}.png"), "--model", str(out / "model.safetensors"),
                                   "--backend", backend, "--precision", "fp32"], capture_output=True, text=True, timeout=120)
        assert restored.returncode == 0, restored.stderr
    outputs = [np.asarray(Image.open(tmp_path / f"{backend}.png"), dtype=int) for backend in backends]
    assert np.abs(outputs[0] - outputs[-1]).max() <= 1


def test_init_fresh_starts_a_new_conditioning_from_trained_weights(tmp_path):
    quality_model = archs.build("qunet", {"widths": [8, 8, 8], "blocks": [1, 1, 1], "cond_dim": 8})
    weights.save(quality_model, tmp_path / "q.safetensors", {"arch": "qunet", "config": "{}"})
    tables_model = archs.build("qunet", {"widths": [8, 8, 8], "blocks": [1, 1, 1], "cond_dim": 8, "condition": "tables"})
    with pytest.raises(ValueError, match="does not fit"):  # the embedding differs: say so unless told
        checkpoints.load_init(tables_model, tmp_path / "q.safetensors")
    fresh = tables_model.embed.mlp[0].weight.clone()
    checkpoints.load_init(tables_model, tmp_path / "q.safetensors", ("embed.",))
    assert torch.equal(tables_model.embed.mlp[0].weight, fresh)
    assert torch.equal(tables_model.head[1].weight, quality_model.head[1].weight)


def test_init_zero_grows_a_trained_network_without_changing_what_it_computes(tmp_path):
    small = archs.build("qunet", {"widths": [8, 8, 8], "blocks": [1, 1, 1], "cond_dim": 8})
    torch.nn.init.normal_(small.tail[0].weight, std=0.1)  # a trained network is not the identity
    weights.save(small, tmp_path / "small.safetensors", {"arch": "qunet", "config": "{}"})
    grown = archs.build("qunet", {"widths": [8, 8, 8], "blocks": [1, 1, 3], "cond_dim": 8})
    new_blocks = ("middle.blocks.1.", "middle.blocks.2.")
    image, quality = torch.rand(1, 3, 16, 24), torch.tensor([30.0])
    checkpoints.load_init(grown, tmp_path / "small.safetensors", new_blocks)
    assert not torch.allclose(grown(image, quality), small(image, quality), atol=1e-4)  # fresh blocks change it
    with pytest.raises(ValueError, match="init_zero"):  # loaded weights are not zeroed by a slip of the prefix
        checkpoints.load_init(grown, tmp_path / "small.safetensors", new_blocks, ("middle.blocks.0.conv2.",))
    checkpoints.load_init(grown, tmp_path / "small.safetensors", new_blocks, tuple(b + "conv2." for b in new_blocks))
    assert torch.allclose(grown(image, quality), small(image, quality), atol=1e-6)


def test_init_widen_keeps_what_a_narrow_network_computes_and_lets_new_channels_learn(tmp_path):
    narrow = archs.build("qunet", {"widths": [8, 8, 16], "blocks": [1, 1, 2], "cond_dim": 8})
    torch.nn.init.normal_(narrow.tail[0].weight, std=0.1)  # a trained network is not the identity
    weights.save(narrow, tmp_path / "narrow.safetensors", {"arch": "qunet", "config": "{}"})
    wide = archs.build("qunet", {"widths": [12, 16, 16], "blocks": [1, 1, 2], "cond_dim": 8})
    with pytest.raises(ValueError, match="does not fit"):  # a wider architecture is refused unless told
        checkpoints.load_init(wide, tmp_path / "narrow.safetensors")
    checkpoints.load_init(wide, tmp_path / "narrow.safetensors", widen=True)
    image, quality = torch.rand(2, 3, 16, 24), torch.tensor([30.0, 70.0])
    assert torch.allclose(wide(image, quality), narrow(image, quality), atol=1e-6)
    wide(image, quality).square().mean().backward()
    new_into_old = wide.enc1.blocks[0].conv1.weight.grad[:8, 8:]  # started at zero, must not stay there
    assert new_into_old.abs().sum() > 0


@needs_feature_weights
def test_select_min_gain_keeps_a_gan_choice_near_the_picture(folders, tmp_path):
    """A floor no checkpoint reaches exports nothing and says why; val-STEP weights are kept on request."""
    out = tmp_path / "run"
    result = subprocess.run(train_command(folders, out, 'arch="qunet"', TINY_ARCH["qunet"], 'select="lpips"',
                                          "select_min_gain=50.0", "keep_val_weights=true", steps=4),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "select_min_gain" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in out.glob("val-*.safetensors")) == ["val-2.safetensors", "val-4.safetensors"]
    assert not (out / "model.safetensors").exists()


def test_lowpass_l1_sees_colour_and_block_means_not_detail_inside_them():
    content = train.ContentLoss(train.load_config(None, ["l1_lowpass=2.0", "lowpass=4"]))
    clean = torch.rand(1, 3, 16, 16)
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None]) % 2 * 0.2 - 0.1  # zero mean in every 2x2
    detail, tint = content(clean + checker, clean), content(clean + 0.1, clean)
    assert detail["l1low"].item() == pytest.approx(0, abs=1e-6) and detail["l1"].item() == pytest.approx(0.1)
    assert tint["l1low"].item() == pytest.approx(0.2)


def test_mse_db_counts_each_crop_by_its_gain_not_by_its_squared_error():
    content = train.ContentLoss(train.load_config(None, ["l1=0", "mse_db=1.0"]))
    clean = torch.zeros(2, 3, 16, 16)
    compressed = clean + torch.tensor([0.02, 0.2]).view(2, 1, 1, 1)  # a photo's small error, a screenshot's large
    halved_small = compressed * torch.tensor([0.5, 1.0]).view(2, 1, 1, 1)
    halved_large = compressed * torch.tensor([1.0, 0.5]).view(2, 1, 1, 1)
    small, large = (content(r, clean, compressed)["mse_db"].item() for r in (halved_small, halved_large))
    assert content(compressed, clean, compressed)["mse_db"].item() == pytest.approx(0, abs=1e-6)
    assert large == pytest.approx(-6.02 / 2, abs=0.01)  # the large error halved: 6 dB on one crop of two
    assert small == pytest.approx(-6.02 / 2, abs=0.4)  # the small one halved counts about as much (the floor)
    assert set(content(compressed, clean, compressed)) == {"mse_db"}


def test_plot_curve_continues_a_run_with_a_stage_started_from_one_of_its_steps(tmp_path):
    def log(path, threads, lines):
        path.write_text(f"9 training images, 4 validation pairs, 5 parameters, 1 process(es) on cpu, {threads} thread(s) each\n"
                        + "".join(f"step {step}  val PSNR 30.0 dB (JPEG 29.0, gain {gain:+.3f})  {hours} h\n"
                                  for step, gain, hours in lines))
        return path
    main = log(tmp_path / "main.log", 2, [(1000, 1.0, 0.5), (2000, 1.1, 1.0), (3000, 1.2, 1.5)])
    stage = log(tmp_path / "stage.log", 1, [(500, 1.15, 0.25), (1000, 1.3, 0.5)])
    out = tmp_path / "curve.png"
    script = Path(__file__).parents[1] / "scripts" / "plot-curve.py"
    result = subprocess.run([sys.executable, str(script), str(main), "--stage", f"{stage}@2000", "-o", str(out)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # main's step 3000 is dropped; the stage's hours (one thread) follow main's 2 CPU-hours at step 2000
    assert "4 points, last step 3000 at 2.50 CPU-hours, gain +1.300 dB" in result.stdout
    assert out.exists()
    missing = subprocess.run([sys.executable, str(script), str(main), "--stage", f"{stage}@2500", "-o", str(out)],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "no validation at step 2500" in missing.stderr


def test_distill_folders_pick_the_pictures_that_learn_from_the_teacher(tmp_path):
    photos, content = tmp_path / "cid22", tmp_path / "more" / "content"
    files = [photos / "a.png", photos / "b.png", content / "c.png"]
    assert train.taught_pictures(files, [photos, content], ("cid22",)) == [True, True, False]
    assert train.taught_pictures(files, [photos, content], ()) == [True, True, True]
    assert train.taught_pictures(files, [photos, content], ("train",)) == [False, False, False]


def test_crops_say_which_pictures_learn_from_the_teacher():
    images = [np.asarray(photo(64, 64, seed=1)), np.full((64, 64, 3), 90, dtype=np.uint8)]
    crops = data.JpegCrops(images, crop=32, batch=16, seed=0, degradation=degradations.Degradation(),
                           taught=[True, False])
    compressed, _, _, taught = crops[0]
    flat = (compressed.amax(dim=(1, 2, 3)) - compressed.amin(dim=(1, 2, 3))) < 0.05  # crops of the one-colour picture
    assert 0 < flat.sum() < 16 and taught.tolist() == (~flat).float().tolist()


def test_the_teacher_of_distill_is_the_named_file_else_the_init(tmp_path):
    config = {"widths": [8, 8, 8], "blocks": [1, 1, 1], "cond_dim": 8}
    files = {}
    for name, seed in (("init", 0), ("teacher", 1)):
        torch.manual_seed(seed)
        files[name] = tmp_path / f"{name}.pt"
        torch.save(archs.build("qunet", config).state_dict(), files[name])
    for teacher, expected in (("", "init"), (str(files["teacher"]), "teacher")):
        cfg = train.TrainConfig(arch="qunet", arch_config=config, init=str(files["init"]), teacher=teacher, distill=1.0)
        taught = train.float_init(cfg, torch.device("cpu")).state_dict()
        assert all(torch.equal(taught[name], tensor) for name, tensor in torch.load(files[expected]).items())
