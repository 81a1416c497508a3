import json
import re

import numpy as np
import pytest
import torch

from astro_morph.errors import UserError
from astro_morph.training import train as train_mod
from astro_morph.training.augment import augment_batch
from astro_morph.training.metrics import classification_report, expected_calibration_error
from astro_morph.training.train import TrainConfig, fit_temperature, train
from conftest import shared_data

GZ1_CLASSES = ["elliptical", "spiral", "edge_on", "merger", "dont_know"]


def _cfg(tmp_path, **kw):
    data = shared_data("gz1")
    base = dict(labels=str(data / "labels.csv"), image_dir=str(data / "images"),
                output=str(tmp_path / "m.amz"), class_names=GZ1_CLASSES, epochs=1,
                batch_size=32, limit=kw.pop("limit", 256), lr=1e-3)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.slow
def test_one_epoch_on_real_images_writes_a_usable_model(tmp_path):
    from astro_morph.inference.load import classifier_from_file

    result = train(_cfg(tmp_path), progress=False)
    assert result["val"]["n"] == 256 and 0 <= result["val"]["accuracy"] <= 1
    assert not (tmp_path / "m.amz.ckpt").exists()  # the model file holds the result now
    with pytest.raises(UserError, match="exists; pass --overwrite"):
        train(_cfg(tmp_path), progress=False)
    clf = classifier_from_file(tmp_path / "m.amz", "onnx")
    assert clf.class_names == GZ1_CLASSES and clf.input_size == 32
    p = clf.predict(np.random.default_rng(0).random((3, 32, 32, 3), dtype=np.float32))
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)


@pytest.mark.parametrize(("ema", "mixup", "sam", "spin"),
                         [(0.0, 0.0, 0.0, None), (0.9, 0.0, 0.0, None), (0.0, 0.4, 0.0, None),
                          (0.0, 0.0, 0.05, None), (0.0, 0.0, 0.0, "gz1_class")])
def test_interrupted_training_resumes_exactly(tmp_path, monkeypatch, ema, mixup, sam, spin):
    cfg = _cfg(tmp_path, epochs=2, limit=64, output=str(tmp_path / "a.amz"),
               checkpoint_dir=str(tmp_path / "ck"), ema=ema, mixup=mixup, sam=sam,
               spin_column=spin)
    straight = train(cfg, progress=False)

    # Kill the run right after the first epoch's checkpoint is written.
    real_save = train_mod._atomic_save
    calls = []

    def save_then_die(obj, path):
        real_save(obj, path)
        calls.append(1)
        raise KeyboardInterrupt

    cfg2 = _cfg(tmp_path, epochs=2, limit=64, output=str(tmp_path / "b.amz"),
                checkpoint_dir=str(tmp_path / "ck2"), ema=ema, mixup=mixup, sam=sam,
                spin_column=spin)
    monkeypatch.setattr(train_mod, "_atomic_save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(cfg2, progress=False)
    monkeypatch.setattr(train_mod, "_atomic_save", real_save)
    first_s = float(torch.load(tmp_path / "ck2" / "checkpoint.pt", weights_only=True)
                    ["train_seconds"])
    resumed = train(cfg2, resume=True, progress=False)
    assert len(calls) == 1
    # the reported training time counts the segment before the interruption too
    assert 0 < first_s < resumed["train_seconds"]
    log = json.loads((tmp_path / "b.amz.train.json").read_text())
    assert log["train_seconds"] == resumed["train_seconds"] and log["resumed_at_epoch"] == 1
    assert [h["loss"] for h in resumed["history"]] == pytest.approx(
        [h["loss"] for h in straight["history"]], rel=1e-5)
    # val loss is scored on the shipped weights: with --ema, the restored average
    assert [h["val_loss"] for h in resumed["history"]] == pytest.approx(
        [h["val_loss"] for h in straight["history"]], rel=1e-5)
    assert resumed["val"]["accuracy"] == straight["val"]["accuracy"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_interrupted_training_resumes_on_cuda(tmp_path, monkeypatch):
    """The checkpoint loads onto the GPU, and its random-number states go back to the CPU
    generators (on an H200, resuming failed with 'RNG state must be a torch.ByteTensor')."""
    cfg = _cfg(tmp_path, epochs=2, limit=64, device="cuda", checkpoint_dir=str(tmp_path / "ck"))
    real_save = train_mod._atomic_save
    first = []

    def save_then_die(obj, path):
        real_save(obj, path)
        first.append(json.loads(obj["history"]))
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "_atomic_save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False)
    monkeypatch.setattr(train_mod, "_atomic_save", real_save)
    resumed = train(cfg, resume=True, progress=False)
    assert len(resumed["history"]) == 2 and resumed["history"][:1] == first[0]


def test_ema_warmup_lets_the_first_steps_fade():
    """Ten early steps at 100 then 200 at 1: the warmed-up average forgets the start (a plain
    0.998 average would still be near 67, the failure seen on G3's batch-norm variances)."""
    from torch.optim.swa_utils import AveragedModel

    p = torch.nn.Parameter(torch.tensor([100.0]))
    module = torch.nn.Module()
    module.p = p
    avg = AveragedModel(module, multi_avg_fn=train_mod.ema_with_warmup(0.998))
    for step in range(210):
        with torch.no_grad():
            p.fill_(100.0 if step < 10 else 1.0)
        avg.update_parameters(module)
    assert float(avg.module.p.detach()) == pytest.approx(1.0, abs=0.01)


def test_ema_scores_the_average_without_changing_the_training(tmp_path):
    """The moving average is what is validated and shipped; the optimised weights, and so
    the training loss, are those of the run without it."""
    from astro_morph.models.model_file import read_bundle

    # batches of 8: 16 steps, enough for the warmed-up average to lag the weights
    plain = train(_cfg(tmp_path, epochs=2, limit=64, batch_size=8,
                       output=str(tmp_path / "p.amz")), progress=False)
    averaged = train(_cfg(tmp_path, epochs=2, limit=64, batch_size=8,
                          output=str(tmp_path / "e.amz"), ema=0.9), progress=False)
    assert [h["loss"] for h in averaged["history"]] == pytest.approx(
        [h["loss"] for h in plain["history"]], rel=1e-6)
    assert [h["val_loss"] for h in averaged["history"]] != pytest.approx(
        [h["val_loss"] for h in plain["history"]], rel=1e-3)
    assert read_bundle(tmp_path / "e.amz").config["provenance"]["config"]["ema"] == 0.9
    with pytest.raises(UserError, match="EMA decay must be in"):
        train(_cfg(tmp_path, output=str(tmp_path / "x.amz"), ema=1.0), progress=False)


def test_resume_accepts_a_checkpoint_from_before_an_option_existed():
    """A field added to TrainConfig since the checkpoint counts as its default; a changed
    value of an existing one, or of the new one, still refuses."""
    current = {"lr": 0.001, "ema": 0.0, "label_smoothing": 0.0}
    assert train_mod._same_settings({"lr": 0.001, "label_smoothing": 0.0}, current)
    assert not train_mod._same_settings({"lr": 0.01, "label_smoothing": 0.0}, current)
    assert not train_mod._same_settings({"lr": 0.001, "label_smoothing": 0.0},
                                        {**current, "ema": 0.998})


def test_resume_refuses_other_settings_and_missing_checkpoint(tmp_path):
    cfg = _cfg(tmp_path, limit=32, checkpoint_dir=str(tmp_path / "ck"))
    with pytest.raises(UserError, match="no checkpoint"):
        train(cfg, resume=True, progress=False)
    train(cfg, progress=False)
    with pytest.raises(UserError, match="other settings"):
        train(_cfg(tmp_path, limit=32, lr=0.5, checkpoint_dir=str(tmp_path / "ck")),
              resume=True, progress=False)


def test_augment_shapes_range_and_determinism():
    x = torch.rand(4, 3, 54, 54)
    a = augment_batch(x, 32, 0.8, generator=torch.Generator().manual_seed(1))
    b = augment_batch(x, 32, 0.8, generator=torch.Generator().manual_seed(1))
    assert a.shape == (4, 3, 32, 32) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    # No jitter, no shift, crop = region: a flat image stays flat in the middle.
    flat = augment_batch(torch.full((2, 3, 20, 20), 0.5), 16, 0.5, crop_range=(0.3, 0.3),
                         max_shift=0, jitter=0, hue=0)
    assert torch.allclose(flat[:, :, 4:12, 4:12], torch.tensor(0.5), atol=1e-5)



def test_no_colour_jitter_keeps_each_galaxys_colour(tmp_path, monkeypatch):
    """--no-colour-jitter: geometry only, so a red galaxy stays that red; the paper's jitter
    changes it. train passes the setting to every batch's augmentation."""
    red = torch.tensor([0.8, 0.4, 0.1]).view(1, 3, 1, 1).expand(8, 3, 20, 20)
    geometric = dict(crop_range=(0.3, 0.3), max_shift=0,
                     generator=torch.Generator().manual_seed(0))
    kept = augment_batch(red, 16, 0.5, jitter=0, hue=0, **geometric)
    assert torch.allclose(kept[:, :, 4:12, 4:12], red[:, :, :8, :8], atol=1e-5)
    jittered = augment_batch(red, 16, 0.5, **geometric)
    assert not torch.allclose(jittered[:, :, 4:12, 4:12], red[:, :, :8, :8], atol=1e-2)

    seen = []

    def spy(*args, **kw):
        seen.append({k: kw.get(k) for k in ("jitter", "hue")})
        return augment_batch(*args, **kw)

    monkeypatch.setattr(train_mod, "augment_batch", spy)
    for on in (True, False):
        seen.clear()
        train(_cfg(tmp_path, limit=32, colour_jitter=on, output=str(tmp_path / f"{on}.amz")),
              progress=False)
        assert seen and all(s == ({"jitter": None, "hue": None} if on
                                  else {"jitter": 0.0, "hue": 0.0}) for s in seen)


def test_mixup_draws_from_the_generator_and_blends_images_and_targets(tmp_path, monkeypatch):
    draws = [train_mod.mixup_draw(0.4, 16, torch.Generator().manual_seed(3)) for _ in range(2)]
    assert draws[0][0] == draws[1][0] and torch.equal(draws[0][1], draws[1][1])
    assert sorted(draws[0][1].tolist()) == list(range(16))
    lams = [train_mod.mixup_draw(0.4, 2, torch.Generator().manual_seed(k))[0] for k in range(200)]
    # Beta(0.4, 0.4): mean 1/2, variance 1/(4 * 1.8) = 0.139; U-shaped, most draws near 0 or 1
    assert 0 < min(lams) and max(lams) < 1
    assert abs(np.mean(lams) - 0.5) < 0.06 and abs(np.var(lams) - 0.139) < 0.03

    # The loss is lam * (loss on the labels) + (1 - lam) * (loss on the partners' labels).
    seen = []
    real = train_mod._objective

    def spy(logits, y, soft, weights, cfg):
        seen.append((logits.detach().clone(), y.clone()))
        return real(logits, y, soft, weights, cfg)

    monkeypatch.setattr(train_mod, "_objective", spy)
    result = train(_cfg(tmp_path, limit=32, batch_size=32, mixup=0.4), progress=False)
    (logits_a, y), (logits_b, y_partner) = seen
    assert torch.equal(logits_a, logits_b) and not torch.equal(y, y_partner)
    assert sorted(y.tolist()) == sorted(y_partner.tolist())  # the same batch, shuffled
    assert np.isfinite(result["history"][0]["loss"])
    with pytest.raises(UserError, match="mixup must be >= 0"):
        train(_cfg(tmp_path, output=str(tmp_path / "x.amz"), mixup=-1.0), progress=False)


def test_sam_steps_from_the_gradient_at_the_moved_weights():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2)).train()
    x, y = torch.randn(8, 3, 8, 8), torch.tensor([0, 1] * 4)
    params = list(net.parameters())
    before = [p.detach().clone() for p in params]
    torch.nn.functional.cross_entropy(net(x), y).backward()
    first = [p.grad.clone() for p in params]
    moves = train_mod.sam_ascent(params, 0.05)
    # the weights moved by rho along the normalised gradient
    step = torch.cat([(p.detach() - b).flatten() for p, b in zip(params, before, strict=True)])
    grad = torch.cat([g.flatten() for g in first])
    assert float(step.norm()) == pytest.approx(0.05, rel=1e-4)
    assert float(torch.nn.functional.cosine_similarity(step, grad, dim=0)) > 0.9999
    bn = net[1]
    stats = (bn.running_mean.clone(), bn.running_var.clone())
    for p in params:
        p.grad = None
    with train_mod.batch_norm_momentum(net, 0.0):
        torch.nn.functional.cross_entropy(net(x), y).backward()
    # the second pass normalised by the batch but left the running statistics alone
    assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])
    assert bn.momentum == 0.1
    train_mod.sam_descend(params, moves)
    for p, b in zip(params, before, strict=True):
        torch.testing.assert_close(p.detach(), b)  # back where it was...
    # ...holding the gradient taken at the moved weights, not the first one
    assert not all(torch.allclose(p.grad, g) for p, g in zip(params, first, strict=True))


def test_sam_changes_training_and_rejects_a_negative_radius(tmp_path):
    plain = train(_cfg(tmp_path, limit=32, output=str(tmp_path / "a.amz")), progress=False)
    sam = train(_cfg(tmp_path, limit=32, output=str(tmp_path / "b.amz"), sam=0.05),
                progress=False)
    # one step from the same weights and batch: the loss before it is the same, the
    # weights after it are not
    assert plain["history"][0]["loss"] == sam["history"][0]["loss"]
    assert plain["history"][0]["val_loss"] != sam["history"][0]["val_loss"]
    assert np.isfinite(sam["history"][0]["val_loss"])
    with pytest.raises(UserError, match="SAM radius must be"):
        train(_cfg(tmp_path, output=str(tmp_path / "x.amz"), sam=-0.1), progress=False)


def test_weight_decay_shrinks_weights_but_not_norms_or_biases(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    params = list(net.parameters())
    before = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(train_mod._decay_groups(params, 0.5), lr=0.1, weight_decay=0.5,
                           decoupled_weight_decay=True)
    for p in params:
        p.grad = torch.zeros_like(p)  # Adam's own step is then 0: only the decay moves them
    opt.step()
    conv_w, conv_b, bn_w, bn_b = params
    torch.testing.assert_close(conv_w, before[0] * (1 - 0.1 * 0.5))
    for p, b in zip((conv_b, bn_w, bn_b), before[1:], strict=True):
        assert torch.equal(p, b)
    assert train_mod._decay_groups(params, 0.0) is params  # off: plain Adam's single group
    # Off, the trainer's optimizer is plain Adam to the bit (earlier model files reproduce).
    nets = [torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
            for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    opts = [torch.optim.Adam(nets[0].parameters(), lr=1e-3),
            torch.optim.Adam(train_mod._decay_groups(list(nets[1].parameters()), 0.0), lr=1e-3,
                             weight_decay=0.0, decoupled_weight_decay=True)]
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    for _ in range(3):
        for net, opt in zip(nets, opts, strict=True):
            opt.zero_grad()
            net(x).square().mean().backward()
            opt.step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(UserError, match="weight decay must be a finite number >= 0"):
        train(_cfg(tmp_path, weight_decay=float("nan")), progress=False)


def test_metrics_on_known_inputs():
    y = np.array([0, 0, 0, 1, 1, 2])
    probs = np.eye(3)[[0, 0, 1, 1, 1, 2]] * 0.9 + 0.1 / 3
    r = classification_report(y, probs, ["a", "b", "c"])
    assert r["accuracy"] == pytest.approx(5 / 6)
    assert r["per_class"]["a"]["recall"] == pytest.approx(2 / 3)
    assert r["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert r["recall_weighted"] == pytest.approx(5 / 6)  # weighted recall == accuracy
    assert r["confusion"] == [[2, 1, 0], [0, 2, 0], [0, 0, 1]]
    assert expected_calibration_error(np.array([0, 1]), np.array([[1.0, 0], [1.0, 0]])) == 0.5
    f1_a, f1_b = 2 * (1 * 2 / 3) / (1 + 2 / 3), 2 * (2 / 3 * 1) / (2 / 3 + 1)
    assert r["f1_macro"] == pytest.approx((f1_a + f1_b + 1) / 3)
    # A class the split lacks and the model never predicts has no F1: macro-F1 leaves it
    # out (a small split); one it lacks but the model predicts counts, as a 0.
    four = classification_report(y, np.hstack([probs, np.zeros((6, 1))]), ["a", "b", "c", "d"])
    assert four["f1_macro"] == pytest.approx(r["f1_macro"])
    assert [m["scored"] for m in four["per_class"].values()] == [True, True, True, False]
    wrong = np.hstack([probs, np.zeros((6, 1))])
    wrong[5] = [0, 0, 0.1, 0.9]  # the 'c' row called 'd'
    assert classification_report(y, wrong, ["a", "b", "c", "d"])["f1_macro"] == \
        pytest.approx((f1_a + f1_b + 0 + 0) / 4)


def test_temperature_scaling_softens_overconfident_logits():
    torch.manual_seed(0)
    labels = torch.randint(0, 3, (400,))
    logits = torch.randn(400, 3)
    logits[torch.arange(400), labels] += 1.0
    assert fit_temperature(logits * 10, labels) > 3


def test_same_seed_and_threads_give_the_same_model_file(tmp_path):
    """Bit for bit: same data, seed and thread count -> identical model files (and SHA)."""
    import hashlib
    import shutil

    out = tmp_path / "run" / "m.amz"
    digests = []
    for attempt in range(2):
        cfg = _cfg(tmp_path, arch="efficientnet-g0", epochs=2, limit=64, threads=2,
                   output=str(out))
        result = train(cfg, progress=False, overwrite=True)
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
        assert result["sha256"] == digests[-1]
        shutil.move(out, tmp_path / f"m{attempt}.amz")
    assert digests[0] == digests[1]
    # The provenance says what the bytes depend on besides the config.
    from astro_morph.models.model_file import read_bundle

    env = read_bundle(tmp_path / "m0.amz").config["provenance"]["environment"]
    assert env["threads"] == 2 and env["torch"] == torch.__version__
    assert "train_seconds" not in read_bundle(tmp_path / "m0.amz").config["provenance"]


def test_distillation_targets_are_the_teachers_tta_probabilities(tmp_path, tiny_model):
    """Soft targets come from the teacher through the classify path, one row per image, and
    a distilled training run records its teacher."""
    from astropy.table import Table

    from astro_morph.api import classify
    from astro_morph.inference.load import load_model
    from astro_morph.inference.tta import TTAClassifier
    from astro_morph.models.model_file import read_bundle

    data = shared_data("gz1")
    ids = ["587722952767439450", "587722953303916935"]
    soft = train_mod.teacher_targets([str(tiny_model)] * 2, ids, str(data / "images"), "OBJID",
                                     GZ1_CLASSES, threads=1)
    ref = classify(Table({"OBJID": ids}), model=TTAClassifier(load_model(tiny_model)),
                   image_dir=data / "images", id_column="OBJID")
    np.testing.assert_allclose(soft, np.stack([ref[f"morph_prob_{c}"] for c in GZ1_CLASSES], 1),
                               atol=1e-6)
    # Training classes in another order: the teacher's columns are read by class name.
    flipped = train_mod.teacher_targets([str(tiny_model)], ids, str(data / "images"), "OBJID",
                                        GZ1_CLASSES[::-1], threads=1)
    np.testing.assert_allclose(flipped, soft[:, ::-1], atol=1e-6)
    with pytest.raises(UserError, match="teacher classes"):
        train_mod.teacher_targets([str(tiny_model)], ids, str(data / "images"), "OBJID",
                                  [*GZ1_CLASSES[:4], "lenticular"])
    cfg = _cfg(tmp_path, limit=32, teacher=[str(tiny_model)], distill_weight=0.7)
    train(cfg, progress=False)
    prov = read_bundle(cfg.output).config["provenance"]["config"]
    assert prov["teacher"] == [str(tiny_model)] and prov["distill_weight"] == 0.7
    # Fine-tuning records the network it kept, not --arch's default.
    tuned = _cfg(tmp_path, limit=32, init=str(tiny_model), output=str(tmp_path / "ft.amz"))
    train(tuned, progress=False)
    assert read_bundle(tuned.output).config["provenance"]["config"]["arch"] == \
        read_bundle(tiny_model).config["arch"]["name"]
    with pytest.raises(UserError, match="--freeze-backbone needs --init"):
        train(_cfg(tmp_path, freeze_backbone=True, output=str(tmp_path / "fb.amz")),
              progress=False)


def test_pseudo_labels_add_the_teachers_confident_images(tmp_path, tiny_model):
    """Unlabelled images the teacher is sure of join training with its class; an unreadable
    one is skipped and counted, not fatal; other files in the folder are ignored."""
    from PIL import Image

    from astro_morph.models.model_file import read_bundle
    from astro_morph.training.pseudo import pseudo_labelled, unlabelled_images

    folder = tmp_path / "unlabelled"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):  # smooth blobs of several sizes and colours on a dark sky
        yy, xx = np.mgrid[:96, :96] - 48
        blob = np.exp(-(xx ** 2 + (yy * rng.uniform(0.3, 1)) ** 2) / rng.uniform(50, 400))
        img = (blob[..., None] * rng.uniform(80, 255, 3) + rng.normal(10, 3, (96, 96, 3)))
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"u{i:02d}.jpg")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.jpg").write_bytes(b"")
    # The sources open <id>.jpg/.jpeg/.png and the same in upper case only: a mixed-case
    # suffix is not listed (it was, and then the duplicate check crashed on the image it
    # could not find).
    (folder / "mixed.Jpg").write_bytes((folder / "u00.jpg").read_bytes())
    ids = list(unlabelled_images(folder))
    assert ids == ["broken"] + [f"u{i:02d}" for i in range(12)]  # no .txt, hidden, .Jpg

    probs = train_mod.teacher_targets([str(tiny_model)], ids, str(folder), "id",
                                      GZ1_CLASSES, threads=1, allow_missing=True)
    conf = np.nan_to_num(probs, nan=0).max(1)
    threshold = float(np.median(conf[np.isfinite(probs).all(1)]))
    data, soft, stats = pseudo_labelled([str(tiny_model)], folder, GZ1_CLASSES, threshold,
                                        size=40, threads=1)
    expected = [i for i, c in zip(ids, conf, strict=True) if c >= threshold]
    assert data.ids == expected and stats["kept"] == len(expected) > 0
    assert stats["images"] == 13 and stats["unreadable"] == 1
    np.testing.assert_array_equal(data.labels, soft.argmax(1))
    assert data.images.shape == (len(expected), 40, 40, 3)
    assert sum(stats["kept_per_class"].values()) == len(expected)

    # A folder whose only listed image is a val image's copy: it is dropped, and the
    # mixed-case file beside it is not opened (before, a crash on the file not found).
    only_val = tmp_path / "only_val"
    only_val.mkdir()
    yy, xx = np.mgrid[:200, :200] - 100
    sky = 180 * np.exp(-(xx ** 2 + (yy / 0.6) ** 2) / 300) + rng.normal(20, 6, (200, 200))
    Image.fromarray(sky.clip(0, 255).astype(np.uint8)).convert("RGB").save(only_val / "g.jpg")
    (only_val / "other.Jpg").write_bytes((folder / "u00.jpg").read_bytes())
    (tmp_path / "val_copy.jpg").write_bytes((only_val / "g.jpg").read_bytes())
    with pytest.raises(UserError, match="shows a val/test galaxy"):
        pseudo_labelled([str(tiny_model)], only_val, GZ1_CLASSES, threshold, size=40,
                        threads=1, exclude=[tmp_path / "val_copy.jpg"])
    with pytest.raises(UserError, match="lower --pseudo-threshold"):
        pseudo_labelled([str(tiny_model)], folder, GZ1_CLASSES, 1.0, size=40, threads=1)
    with pytest.raises(UserError, match="needs --teacher"):
        train(_cfg(tmp_path, pseudo_labels=str(folder)), progress=False)
    cfg = _cfg(tmp_path, limit=32, teacher=[str(tiny_model)], distill_weight=0.0,
               pseudo_labels=str(folder), pseudo_threshold=threshold, threads=1)
    result = train(cfg, progress=False)
    prov = read_bundle(cfg.output).config["provenance"]
    assert prov["train_images"] == 32 + len(expected)
    # The trainer also checked the folder against gz1's val and test images (none match).
    assert prov["pseudo_labels"] == result["pseudo_labels"] == stats
    assert stats["duplicates_of_eval_images"] == 0


def test_extra_labels_join_training_with_their_own_classes_only(tmp_path, tiny_model,
                                                                 monkeypatch):
    """Another table's train-split rows of the training classes join training; rows of
    other classes, of other splits, with no image, or showing a val/test galaxy do not."""
    from click.testing import CliRunner
    from PIL import Image

    from astro_morph.cli import cli
    from astro_morph.models.model_file import read_bundle
    from astro_morph.training.extra import extra_labelled

    folder = tmp_path / "gz2"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in ["a0", "a1", "a2", "b0", "b1", "v0"]:  # noise skies: no two alike
        Image.fromarray(rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)).save(
            folder / f"{name}.jpg")
    (tmp_path / "val_copy.jpg").write_bytes((folder / "a2.jpg").read_bytes())
    rows = ["GalaxyID,label,split", "a0,spiral,train", "a1,spiral,train", "a2,spiral,train",
            "a3,spiral,train", "b0,non_spiral,train", "b1,non_spiral,train", "v0,spiral,val"]
    table = tmp_path / "gz2.csv"
    table.write_text("\n".join(rows) + "\n")

    data, stats = extra_labelled(table, folder, GZ1_CLASSES, size=40,
                                 exclude=[tmp_path / "val_copy.jpg"])
    assert data.ids == ["a0", "a1"] and data.labels.tolist() == [1, 1]  # spiral's index
    assert data.images.shape == (2, 40, 40, 3)
    assert stats["rows"] == 6 and stats["other_classes"] == 2  # the val row is not counted
    assert stats["duplicates_of_eval_images"] == 1 and stats["unusable"] == 1  # a2; a3
    assert stats["kept"] == 2 and stats["kept_per_class"]["spiral"] == 2

    with pytest.raises(UserError, match="gz2.csv: no row of split 'train' has a training "
                                        "class .*; its labels are non_spiral"):
        extra_labelled(table, folder, ["elliptical", "non"], size=40)
    with pytest.raises(UserError, match="go together"):
        train(_cfg(tmp_path, extra_labels=str(table)), progress=False)
    res = CliRunner().invoke(cli, ["train", str(table), "--image-dir", str(folder), "-o",
                                   str(tmp_path / "x.amz"), "--extra-id-column", "GalaxyID"])
    assert isinstance(res.exception, UserError)  # cli.main prints it as one line
    assert str(res.exception) == "--extra-id-column does nothing without --extra-labels"

    cfg = _cfg(tmp_path, limit=32, extra_labels=str(table), extra_image_dir=str(folder),
               threads=1)
    result = train(cfg, progress=False)
    prov = read_bundle(cfg.output).config["provenance"]
    assert prov["train_images"] == 32 + 3  # a0, a1 and a2: gz1 holds no copy of a2
    assert prov["train_class_counts"]["spiral"] >= 3
    # The trainer checked them against gz1's val and test images (none match noise).
    assert prov["extra_labels"] == result["extra_labels"]
    assert result["extra_labels"]["duplicates_of_eval_images"] == 0
    assert result["extra_labels"]["kept"] == 3

    # With a teacher, the extra images get its soft targets too (one row per image).
    seen = []
    real = train_mod.teacher_targets
    monkeypatch.setattr(train_mod, "teacher_targets",
                        lambda t, ids, *a, **k: seen.append(list(ids)) or real(t, ids, *a, **k))
    train(_cfg(tmp_path, limit=32, extra_labels=str(table), extra_image_dir=str(folder),
               teacher=[str(tiny_model)], threads=1, output=str(tmp_path / "kd.amz")),
          progress=False)
    assert len(seen) == 2 and len(seen[0]) == 32 and seen[1] == ["a0", "a1", "a2"]


def test_missing_or_broken_images_cost_their_rows_not_the_run(tmp_path, caplog):
    """A labelled set with a missing and a corrupt image trains on the rest: the rows left
    out are warned about (first one named) and listed in the model's provenance; a row with
    a blank label is left out with a warning (read from CSV it is masked, and was once a
    class named "0"); a split with no usable image at all is a one-line error."""
    import logging

    from astropy.table import Table
    from PIL import Image

    from astro_morph.models.model_file import read_bundle
    from conftest import make_galaxy_image

    from ..data import load_split

    images = tmp_path / "images"
    images.mkdir()
    ids = [f"g{i}" for i in range(8)]
    for i, key in enumerate(ids):
        Image.fromarray(make_galaxy_image(64, seed=i)).save(images / f"{key}.jpg")
    (images / "g1.jpg").unlink()  # missing
    (images / "g2.jpg").write_bytes(b"not a jpeg")  # corrupt
    labels = ["elliptical", "spiral", "elliptical", "spiral", "elliptical", "", "elliptical",
              "spiral"]
    table = Table({"OBJID": ids, "label": labels, "split": ["train"] * 6 + ["val"] * 2})
    table.write(tmp_path / "labels.csv")

    with caplog.at_level(logging.WARNING, logger="astro_morph"):
        data = load_split(table, images, "train", ["elliptical", "spiral"], "OBJID", 40,
                          train=True)
    assert data.ids == ["g0", "g3", "g4"] and data.labels.tolist() == [0, 1, 0]
    assert [s.split(":")[0] for s in data.skipped] == ["g1", "g2"]
    assert data.images.shape == (3, 40, 40, 3)
    assert "left out 2 of 5 rows" in caplog.text and "g1" in caplog.text
    assert "left out 1 rows with no label (first: id g5)" in caplog.text

    cfg = TrainConfig(labels=str(tmp_path / "labels.csv"), image_dir=str(images),
                      output=str(tmp_path / "m.amz"), epochs=1, batch_size=4, threads=1,
                      resolution=16, lr=1e-3)
    train(cfg, progress=False)
    config = read_bundle(cfg.output).config
    prov = config["provenance"]
    assert [s.split(":")[0] for s in prov["skipped_images"]["train"]] == ["g1", "g2"]
    assert prov["train_images"] == 3 and prov["skipped_images"]["val"] == []
    # The counts the class weights came from: the images actually used, not the table's rows.
    assert prov["train_class_counts"] == {"elliptical": 2, "spiral": 1}
    assert config["class_names"] == ["elliptical", "spiral"]

    for key in ("g0", "g3", "g4", "g5"):
        (images / f"{key}.jpg").unlink()
    with pytest.raises(UserError, match="split 'train': no usable image for any of its 5"):
        load_split(table, images, "train", ["elliptical", "spiral"], "OBJID", 40, train=True)


def test_training_classes_needs_two_and_names_the_splits():
    from astropy.table import Table

    from astro_morph.training.data import training_classes

    t = Table({"label": ["a", "b", "", "a"], "split": ["train", "train", "train", "val"]})
    assert training_classes(t, None, "l.csv") == ["a", "b"]  # a blank label is no class
    with pytest.raises(UserError, match="--classes names only 'a'"):
        training_classes(t, ["a"], "l.csv")
    with pytest.raises(UserError, match="classes repeat"):
        training_classes(t, ["a", "a"], "l.csv")
    with pytest.raises(UserError, match="split labels every row 'a'"):
        training_classes(t[[0, 2]], None, "l.csv")
    t["split"] = ["Train", "Train", "Train", "val"]
    with pytest.raises(UserError, match=r"no rows in split 'train' \(did you mean 'Train'\?\); "
                                        r"its 'split' column holds 'Train', 'val'"):
        training_classes(t, None, "l.csv")


def test_labels_that_differ_only_in_case_or_separators_are_warned_of(caplog):
    from astropy.table import Table

    from astro_morph.training.data import training_classes

    t = Table({"label": ["Spiral", "spiral", "edge_on", "Edge-on", "merger"],
               "split": ["train"] * 5})
    with caplog.at_level("WARNING", logger="astro_morph"):
        assert len(training_classes(t, None, "l.csv")) == 5  # still trained as given
    said = [r.getMessage() for r in caplog.records]
    assert any("'Spiral' and 'spiral' differ only in case" in m for m in said)
    assert any("'Edge-on' and 'edge_on' differ only in case" in m for m in said)
    caplog.clear()
    with caplog.at_level("WARNING", logger="astro_morph"):
        training_classes(t, ["spiral", "edge_on"], "l.csv")
    assert not caplog.records  # --classes chose among them


@pytest.mark.parametrize("use_buffers", [True, False])
def test_ema_step_count_matches_n_averaged(use_buffers):
    """The warmup counts steps itself (reading n_averaged would sync a GPU each step); the
    average must equal one that reads n_averaged, with the int64 batch-norm counter as a
    second tensor group (AveragedModel calls the update once per group)."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    def reads_n_averaged(a, c, n):
        k = int(n)
        get_ema_multi_avg_fn(min(0.99, (1 + k) / (10 + k)))(a, c, n)

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    ref = AveragedModel(net, multi_avg_fn=reads_n_averaged, use_buffers=use_buffers)
    ours = AveragedModel(net, multi_avg_fn=train_mod.ema_with_warmup(0.99),
                         use_buffers=use_buffers)
    opt = torch.optim.SGD(net.parameters(), 0.1)
    for _ in range(100):
        opt.zero_grad()
        net(torch.randn(8, 4)).pow(2).mean().backward()
        opt.step()
        ref.update_parameters(net)
        ours.update_parameters(net)
    for a, b in zip(ref.state_dict().values(), ours.state_dict().values(), strict=True):
        assert torch.equal(a, b)



def test_training_on_another_crop_scales_the_crops_and_records_it(tmp_path, tiny_model,
                                                                  monkeypatch):
    """--crop-fraction: the random training crops and the cached region scale with it,
    validation uses it, the model file records it (classify then applies it: inference
    tests), and fine-tuning keeps it."""
    from astro_morph.models.model_file import read_bundle
    from astro_morph.training.augment import CROP_RANGE
    from astro_morph.training.data import TRAIN_REGION

    seen = {"augment_batch": [], "load_split": []}

    def spy(name, real):
        def wrapper(*args, **kwargs):
            seen[name].append((args, kwargs))
            return real(*args, **kwargs)
        monkeypatch.setattr(train_mod, name, wrapper)

    spy("augment_batch", train_mod.augment_batch)
    spy("load_split", train_mod.load_split)
    cfg = _cfg(tmp_path, limit=32, crop_fraction=0.3)
    train(cfg, progress=False)
    assert read_bundle(cfg.output).crop_fraction == 0.3
    assert [kw["crop_fraction"] for _, kw in seen["load_split"]] == [0.3, 0.3]  # train, val
    args, _ = seen["augment_batch"][0]
    zoom = 0.3 / (200 / 424)
    assert args[2] == pytest.approx(TRAIN_REGION * zoom)  # the cached region
    assert args[3] == pytest.approx((CROP_RANGE[0] * zoom, CROP_RANGE[1] * zoom))
    # Fine-tuning keeps the framing unless told otherwise; the paper's crop is not recorded.
    tuned = _cfg(tmp_path, limit=32, init=cfg.output, output=str(tmp_path / "ft.amz"))
    train(tuned, progress=False)
    assert read_bundle(tuned.output).crop_fraction == 0.3
    paper = _cfg(tmp_path, limit=32, output=str(tmp_path / "paper.amz"))
    train(paper, progress=False)
    assert "crop_fraction" not in read_bundle(paper.output).config
    assert seen["augment_batch"][-1][0][3] == CROP_RANGE  # exactly: the paper's runs' bits
    with pytest.raises(UserError, match=r"crop fraction must be in \(0, 1\], not 1.5"):
        train(_cfg(tmp_path, crop_fraction=1.5, output=str(tmp_path / "x.amz")),
              progress=False)


def test_train_takes_compares_name_at_size(tmp_path, monkeypatch):
    """``--arch efficientnet-g0@40`` (compare's form, copied from a compare row) was an
    'unknown architecture'; it now sets the input size, and a second, different size is
    refused."""
    from click.testing import CliRunner

    import astro_morph.training.train as train_module
    from astro_morph.cli import cli

    seen = []
    monkeypatch.setattr(train_module, "train", lambda cfg, **kw: seen.append(cfg) or {})
    labels = tmp_path / "labels.csv"
    labels.write_text("OBJID,label,split\n")
    base = ["train", str(labels), "--image-dir", str(tmp_path), "-o", str(tmp_path / "m.amz")]
    CliRunner().invoke(cli, base + ["--arch", "efficientnet-g0@40"])
    assert (seen[0].arch, seen[0].resolution) == ("efficientnet-g0", 40)
    res = CliRunner().invoke(cli, base + ["--arch", "efficientnet-g0@40", "--resolution", "48"])
    assert "efficientnet-g0@40 and --resolution 48 disagree" in str(res.exception)
    assert len(seen) == 1


@pytest.mark.parametrize(("bad", "says"), [
    ({"epochs": 0}, "epochs must be a whole number >= 1, not 0"),
    ({"batch_size": 0}, "batch_size must be a whole number >= 1, not 0"),
    ({"threads": 0}, "threads must be a whole number >= 1, not 0"),
    ({"limit": 0}, "limit must be a whole number >= 1, not 0"),
    ({"epochs": 2.5}, "epochs must be a whole number >= 1, not 2.5"),
    ({"lr": 0.0}, "learning rate must be a finite number > 0, not 0.0"),
    ({"lr": float("nan")}, "learning rate must be a finite number > 0, not nan"),
    ({"resolution": 4}, "resolution must be a whole number >= 8, not 4"),
    ({"resolution": 2048}, "resolution must be 8-1024 pixels, not 2048")])
def test_api_configs_out_of_range_are_one_line(bad, says, tmp_path):
    """The CLI's click ranges, for API callers: epochs=0 had ended in load_state_dict(None),
    batch_size=0 in range()'s ValueError, lr=0 in a run that learned nothing, and
    resolution=0 had been taken for the architecture's own. Checked before any data is read."""
    cfg = TrainConfig(labels=str(tmp_path / "absent.csv"), image_dir=str(tmp_path),
                      output=str(tmp_path / "m.amz"), **bad)
    with pytest.raises(UserError, match=f"^{re.escape(says)}$"):
        train(cfg, progress=False)


def test_leaks_into_any_scored_split_are_named(image_dir, tmp_path, caplog):
    """A galaxy in 'train' and in a split of the survey's own name ('holdout') is a leak as
    much as one in 'test' (only val and the literal 'test' had been checked)."""
    labels = tmp_path / "labels.csv"
    labels.write_text("OBJID,label,split\n1,a,train\n2,b,train\n3,a,val\n4,b,val\n"
                      "1,a,holdout\n")
    cfg = TrainConfig(labels=str(labels), image_dir=str(image_dir),
                      output=str(tmp_path / "m.amz"), epochs=1, batch_size=2, threads=1)
    with caplog.at_level("WARNING", logger="astro_morph"):
        train(cfg, progress=False)
    assert "1 ids are in both 'train' and 'holdout' (first: 1)" in caplog.text


def test_val_rows_of_classes_not_trained_are_named(image_dir, tmp_path, caplog):
    """A val row labelled with a class the training does not have is left out of the
    selection metric; that was silent (evaluate says it)."""
    labels = tmp_path / "labels.csv"
    labels.write_text("OBJID,label,split\n1,a,train\n2,b,train\n3,a,val\n4,c,val\n")
    cfg = TrainConfig(labels=str(labels), image_dir=str(image_dir),
                      output=str(tmp_path / "m.amz"), epochs=1, batch_size=2, threads=1)
    with caplog.at_level("WARNING", logger="astro_morph"):
        train(cfg, progress=False)
    assert "1 'val' rows are labelled with classes the training does not have (c)" in \
        caplog.text


def test_training_names_zero_padded_image_files_as_classify_does(tmp_path):
    """Images exported as 000007.jpg for id 7: the row left out says the names are padded
    (the message classify gives), and a folder that does not exist still gives one line."""
    from astropy.table import Table
    from PIL import Image

    from conftest import make_galaxy_image

    from ..data import load_split

    images = tmp_path / "images"
    images.mkdir()
    for i, name in enumerate(["1.jpg", "000007.jpg"]):
        Image.fromarray(make_galaxy_image(64, seed=i)).save(images / name)
    table = Table({"OBJID": ["1", "7"], "label": ["spiral", "elliptical"],
                   "split": ["train", "train"]})
    data = load_split(table, images, "train", ["elliptical", "spiral"], "OBJID", 32,
                      train=True)
    assert data.ids == ["1"]
    assert data.skipped == [f"7: no image 7.jpg, .jpeg or .png in {images} (000007.jpg is "
                            f"there: the file names are zero-padded, the ids are not; rename "
                            f"the files or pad the ids)"]
    with pytest.raises(UserError, match=r"no usable image .*\(first: 1: no image 1\.jpg, "
                                        r"\.jpeg or \.png in .*nowhere\)$"):
        load_split(table, tmp_path / "nowhere", "train", ["elliptical", "spiral"], "OBJID",
                   32, train=True)


def _handedness(x: torch.Tensor) -> torch.Tensor:
    """Sign of the triangle red -> green -> blue spot centroids, per image: unchanged by
    rotation, reversed by a mirror."""
    n, _, h, w = x.shape
    yy, xx = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype),
                            indexing="ij")
    mass = x.sum((2, 3)).clamp(min=1e-6)
    cx, cy = (x * xx).sum((2, 3)) / mass, (x * yy).sum((2, 3)) / mass
    (ax, bx, cx_), (ay, by, cy_) = cx.unbind(1), cy.unbind(1)
    return torch.sign((bx - ax) * (cy_ - ay) - (by - ay) * (cx_ - ax))


def test_mirror_sign_says_which_augmented_images_are_mirrored():
    img = torch.zeros(1, 3, 64, 64)
    img[0, 0, 20:26, 20:26] = 1  # red, green, blue spots: a triangle with a handedness
    img[0, 1, 20:26, 38:44] = 1
    img[0, 2, 36:42, 24:30] = 1
    batch = img.expand(64, -1, -1, -1).contiguous()
    kw = dict(out_size=48, region=1.0, crop_range=(0.9, 0.9), max_shift=0.0, jitter=0.0,
              hue=0.0)
    x, flip = augment_batch(batch, generator=torch.Generator().manual_seed(3),
                            return_flip=True, **kw)
    # the same draws as without the sign: turning it on changes no training run
    assert torch.equal(x, augment_batch(batch, generator=torch.Generator().manual_seed(3),
                                        **kw))
    assert set(flip.tolist()) == {-1.0, 1.0}
    assert torch.equal(_handedness(x), _handedness(img) * flip)


def test_spin_targets_and_their_loss():
    from astropy.table import Table

    table = Table({"OBJID": [1, 2, 3, 4],
                   "gz1_class": ["spiral_cw", "spiral_acw", "elliptical", "spiral_cw"]})
    got = train_mod.spin_targets(table, "gz1_class", ["spiral_cw", "spiral_acw"],
                                 ["2", "1", "3", "9"], "OBJID", "l.csv")
    assert got.tolist() == [-1, 1, 0, 0]  # id 9 is not in the table (a pseudo-label)
    floats = Table({"OBJID": [1.0, 2.0], "gz1_class": ["spiral_cw", "spiral_acw"]})
    assert train_mod.spin_targets(floats, "gz1_class", ["spiral_cw", "spiral_acw"],
                                  ["1", "2"], "OBJID", "l.csv").tolist() == [1, -1]
    with pytest.raises(UserError, match="l.csv: no column 'spin'"):
        train_mod.spin_targets(table, "spin", ["a", "b"], ["1"], "OBJID", "l.csv")
    with pytest.raises(UserError, match="no training row has gz1_class = 'Z'"):
        train_mod.spin_targets(table, "gz1_class", ["Z", "S"], ["1"], "OBJID", "l.csv")
    with pytest.raises(UserError, match="two different values"):
        train_mod.spin_targets(table, "gz1_class", ["a"], ["1"], "OBJID", "l.csv")
    logit = torch.tensor([2.0, -1.0, 50.0, -50.0])
    spin = torch.tensor([1.0, 1.0, 0.0, 0.0])  # the last two rows count for nothing
    want = torch.nn.functional.binary_cross_entropy_with_logits(logit[:2], torch.ones(2))
    torch.testing.assert_close(train_mod._spin_loss(logit, spin), want)
    assert float(train_mod._spin_loss(logit, torch.zeros(4))) == 0.0


def test_winding_task_trains_a_head_that_is_not_shipped(tmp_path):
    from astro_morph.inference.load import classifier_from_file

    plain = train(_cfg(tmp_path, limit=64, output=str(tmp_path / "a.amz")), progress=False)
    spin = train(_cfg(tmp_path, limit=64, output=str(tmp_path / "b.amz"),
                      spin_column="gz1_class"), progress=False)
    # the same first batch, a different loss: the winding term is in it
    assert plain["history"][0]["loss"] != spin["history"][0]["loss"]
    assert 0 <= spin["history"][0]["val_spin_accuracy"] <= 1
    assert "val_spin_accuracy" not in plain["history"][0]
    clf = classifier_from_file(tmp_path / "b.amz", "torch")
    assert clf.class_names == GZ1_CLASSES  # five classes, no winding output
    with pytest.raises(UserError, match="--spin-column and --mixup"):
        train(_cfg(tmp_path, output=str(tmp_path / "x.amz"), spin_column="gz1_class",
                   mixup=0.2), progress=False)
    with pytest.raises(UserError, match="labels.csv: no column 'nope' for --spin-column"):
        train(_cfg(tmp_path, output=str(tmp_path / "x.amz"), spin_column="nope"),
              progress=False)


def test_val_winding_accuracy_is_the_same_in_slices():
    class Pooled(torch.nn.Module):
        def features(self, x):
            return x.mean((2, 3))

    torch.manual_seed(0)
    head = torch.nn.Linear(3, 1)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (50, 8, 8, 3), dtype=np.uint8)
    spin = rng.choice([-1.0, 0.0, 1.0], 50).astype(np.float32)
    mean, std = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    whole = train_mod._spin_accuracy(Pooled(), head, images, spin, mean, std, "cpu")
    x = torch.from_numpy(images[spin != 0]).permute(0, 3, 1, 2).float() / 255
    want = float(((head(x.mean((2, 3))).squeeze(1) > 0)
                  == torch.from_numpy(spin[spin != 0] > 0)).float().mean())
    assert whole == pytest.approx(want)
    assert train_mod._spin_accuracy(Pooled(), head, images, spin, mean, std, "cpu",
                                    batch=7) == whole
    assert train_mod._spin_accuracy(Pooled(), head, images, np.zeros(50, np.float32), mean,
                                    std, "cpu") is None
