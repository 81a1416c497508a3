import json

import numpy as np
import pytest
import torch

from astro_morph.models.arch import G0, get_arch
from astro_morph.models.efficientnet_g import build_model
from astro_morph.models.flops import count
from astro_morph.search.controller import Controller, reward
from astro_morph.search.enas import SearchConfig, search_arrays
from astro_morph.search.space import DEFAULT_SPACE, SearchSpace, StageChoices
from astro_morph.search.supernet import SuperNet

TINY = SearchSpace(stages=(StageChoices(1, (8,), (1,)), StageChoices(2, (8, 16), (1, 2))),
                   stem_channels=8, head_channels=16, resolution=16)


def test_paper_g0_is_a_point_of_the_default_space():
    g = DEFAULT_SPACE.encode(G0)
    assert DEFAULT_SPACE.to_arch(g).blocks == G0.blocks


def test_every_sampled_genotype_builds_counts_and_runs():
    torch.manual_seed(0)
    ctrl = Controller(DEFAULT_SPACE.sizes)
    net = SuperNet(DEFAULT_SPACE, 3).eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    seen = set()
    for _ in range(12):
        g, logp, ent = ctrl.sample(gen)
        seen.add(tuple(g))
        arch = DEFAULT_SPACE.to_arch(g)
        assert count(arch, 3, 32).macs > 0
        assert build_model(arch, 3).eval()(x).shape == (2, 3)
        assert net(x, g).shape == (2, 3)
        assert logp.item() < 0 and ent.item() > 0
    assert len(seen) > 8  # the untrained policy explores


def test_a_path_computes_only_its_width():
    net = SuperNet(TINY, 2).eval()
    # Stage-2 width 8 of 16: the slot computes 8 channels, not 16 with 8 zeroed.
    feats = {}
    g = [0] * 5 + [0, 0, 0, 0, 0]  # stage 2: k3, e1, se, width 8, 1 layer
    hook = net.stages[1][0].register_forward_hook(lambda m, i, o: feats.setdefault("out", o))
    net(torch.randn(2, 3, 16, 16), g)
    hook.remove()
    assert feats["out"].shape[1] == 8


def test_reward_is_paper_eq1():
    assert reward(0.9, 20e6) == pytest.approx(0.9)
    assert reward(0.9, 40e6, 20e6, w=-0.07) == pytest.approx(0.9 * 2 ** -0.07)
    assert reward(0.8, 10e6, 20e6, w=0.07) == pytest.approx(0.8 * 0.5 ** 0.07)
    # MnasNet's hard-ish variant: no bonus below the target.
    assert reward(0.8, 10e6, 20e6, w=-0.07, w_below=0.0) == pytest.approx(0.8)
    with pytest.raises(ValueError):
        reward(0.8, 0, 20e6)


def _data():
    rng = np.random.default_rng(0)
    tx = rng.integers(0, 255, (48, 16, 16, 3), dtype=np.uint8)
    ty = rng.integers(0, 2, 48)
    vx = rng.integers(0, 255, (24, 16, 16, 3), dtype=np.uint8)
    vy = rng.integers(0, 2, 24)
    return tx, ty, vx, vy


def _cfg(tmp_path, name, **kw):
    base = dict(output=str(tmp_path / f"{name}.json"), iterations=3, shared_steps=2,
                controller_steps=3, batch_size=8, val_batch=16, final_samples=3,
                target_flops=1e5)
    base.update(kw)
    return SearchConfig(**base)


def test_search_writes_a_trainable_genotype_log_and_plot(tmp_path):
    out = search_arrays(*_data(), ["a", "b"], _cfg(tmp_path, "s", metric="accuracy"), TINY,
                        progress=False)
    arch = get_arch(str(tmp_path / "s.json"))  # what `astromorph train --arch FILE` does
    assert arch.blocks == out["arch"].blocks
    log = [json.loads(line) for line in (tmp_path / "s.log.jsonl").read_text().splitlines()]
    assert len(log) == 9 and {"reward", "accuracy", "macs", "genotype"} <= set(log[0])
    assert all(e["reward"] == pytest.approx(reward(e["accuracy"], e["macs"], 1e5))
               for e in log)
    assert (tmp_path / "s.png").stat().st_size > 0
    rates = arch.meta["search"]["it_per_min"]  # _cfg: 3 iterations, no warm-up
    assert rates["warmup"] is None and rates["search"] > 0


def test_phase_rates_from_iteration_end_times():
    from astro_morph.search.enas import phase_rates

    # 2 warm-up iterations of 3 s each, then 2 controller iterations of 12 s each.
    assert phase_rates([3, 6, 18, 30], warmup=2, iterations=4) == {"warmup": 20.0,
                                                                   "search": 5.0}
    # Resumed from a checkpoint that recorded no times: no warm-up rate, the search's from
    # the recorded iterations.
    assert phase_rates([18, 30], warmup=2, iterations=4) == {"warmup": None, "search": 5.0}
    assert phase_rates([3, 6], warmup=2, iterations=2)["search"] is None


def test_a_search_without_a_terminal_prints_its_rate(tmp_path, capsys):
    search_arrays(*_data(), ["a", "b"], _cfg(tmp_path, "p", iterations=10, warmup=9), TINY,
                  progress=None)  # pytest's stderr is not a TTY: the bar is off
    out = capsys.readouterr().out
    assert "search iteration 10/10 (search):" in out and "it/min, reward" in out


def test_interrupted_search_resumes_the_same_run(tmp_path):
    # Interrupted inside the warm-up (uniform paths, no controller steps), resumed after.
    straight = search_arrays(*_data(), ["a", "b"], _cfg(tmp_path, "a", warmup=2), TINY,
                             progress=False)
    search_arrays(*_data(), ["a", "b"], _cfg(tmp_path, "b", iterations=1, warmup=2), TINY,
                  progress=False)
    resumed = search_arrays(*_data(), ["a", "b"], _cfg(tmp_path, "b", warmup=2), TINY,
                            resume=True, progress=False)
    assert resumed["iterations"] == 3
    assert len(resumed["log"]) == 3  # one searching iteration of 3 controller steps
    assert all(e["macro_f1"] >= 0 for e in resumed["log"])
    assert [e["genotype"] for e in resumed["log"]] == [e["genotype"] for e in straight["log"]]
    assert [e["reward"] for e in resumed["log"]] == pytest.approx(
        [e["reward"] for e in straight["log"]])
    assert resumed["arch"].blocks == straight["arch"].blocks


def test_a_sliced_path_computes_exactly_what_its_derived_network_computes():
    """Issue 13: one weight tensor per slot, a path uses its slices, so copying a path's
    slices into the stand-alone network from arch.py gives the same outputs (after the
    supernet's batch-norm statistics were trained by other paths)."""
    import random

    torch.manual_seed(0)
    net = SuperNet(DEFAULT_SPACE, 5)
    x = torch.rand(6, 3, 32, 32)
    rng = random.Random(0)
    with torch.no_grad():
        for _ in range(4):  # train-mode passes move the shared running statistics
            net(x, [rng.randrange(n) for n in DEFAULT_SPACE.sizes])
    net.eval()
    for genotype in [DEFAULT_SPACE.encode(G0)] + [
            [rng.randrange(n) for n in DEFAULT_SPACE.sizes] for _ in range(6)]:
        derived = net.extract(genotype)
        assert derived.arch.blocks == DEFAULT_SPACE.to_arch(genotype).blocks
        with torch.no_grad():
            torch.testing.assert_close(net(x, genotype), derived(x), rtol=1e-5, atol=1e-6)


def test_a_path_has_the_parameters_of_its_derived_network():
    """The slices a path touches are exactly the derived network's weights: a small path
    does not compute (or pay for) the widest one."""
    net = SuperNet(DEFAULT_SPACE, 5)
    smallest = [0] * len(DEFAULT_SPACE.sizes)
    largest = [n - 1 for n in DEFAULT_SPACE.sizes]
    sizes = {}
    for name, g in (("small", smallest), ("large", largest)):
        derived = net.extract(g)
        sizes[name] = sum(p.numel() for p in derived.parameters())
        assert sizes[name] == count(DEFAULT_SPACE.to_arch(g), 5, 32).params
    assert sizes["large"] > 5 * sizes["small"]


def test_reward_metrics_follow_their_formulas_on_known_inputs():
    import math

    from astro_morph.search.enas import score_logits, stratified_subset

    y = torch.tensor([0, 0, 0, 1])  # imbalanced: 3 of class 0
    always_0 = torch.tensor([[5.0, 0.0]] * 4)
    assert score_logits(always_0, y, "accuracy", 2) == pytest.approx(0.75)
    assert score_logits(always_0, y, "balanced_accuracy", 2) == pytest.approx(0.5)
    # macro-F1: class 0 F1 = 2*3/(4+3) = 6/7, class 1 F1 = 0
    assert score_logits(always_0, y, "macro_f1", 2) == pytest.approx(3 / 7)
    assert score_logits(always_0, y, "f1", 2) == pytest.approx(0.75 * 6 / 7)
    # likelihood = exp(-mean over classes of the class's mean cross-entropy)
    ce0, ce1 = -math.log(1 / (1 + math.exp(-5))), -math.log(1 / (1 + math.exp(5)))
    assert score_logits(always_0, y, "likelihood", 2) == pytest.approx(
        math.exp(-(ce0 + ce1) / 2), rel=1e-5)
    # Two paths with the same argmax but different confidence: only likelihood separates.
    softer = torch.tensor([[1.0, 0.0]] * 4)
    assert score_logits(softer, y, "balanced_accuracy", 2) == score_logits(
        always_0, y, "balanced_accuracy", 2)
    assert score_logits(softer, y, "likelihood", 2) != score_logits(always_0, y, "likelihood", 2)
    # The fixed validation subset keeps every class, in proportion.
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    idx = stratified_subset(labels, 20, seed=0)
    assert set(labels[idx]) == {0, 1, 2} and (labels[idx] == 0).sum() == 18
    assert np.array_equal(idx, stratified_subset(labels, 20, seed=0))


def test_latency_table_measures_each_op_once_and_predicts_sums(tmp_path):
    from astro_morph.search.latency import LatencyTable

    table = LatencyTable(TINY, 2, path=tmp_path / "lut.json")
    g = [0] * len(TINY.sizes)
    ms = table.predict(g)
    assert ms > 0 and table.measured == len(table.ops(g)) == 4  # stem, 2 MBConvs, head
    assert ms == pytest.approx(sum(table.ms[k] for k, _ in table.ops(g)))
    again = LatencyTable(TINY, 2, path=tmp_path / "lut.json")  # from disk: nothing timed
    assert again.predict(g) == ms and again.measured == 0
    bigger = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1]  # stage 2: width 16, 2 layers
    new = {k for k, _ in again.ops(bigger)} - set(again.ms)
    assert len(again.ops(bigger)) == 5 and new  # only the ops not timed yet are timed
    again.predict(bigger)
    assert again.measured == len(new)


def test_search_with_latency_cost_logs_and_rewards_predicted_latency(tmp_path, monkeypatch):
    from astro_morph.search import latency

    monkeypatch.setenv("ASTROMORPH_CACHE", str(tmp_path / "cache"))
    # Deterministic "timings" (the real ones are CPU-dependent): ms = input channels.
    monkeypatch.setattr(latency, "measure_seconds", lambda module, shape: shape[0] / 1e3)
    cfg = _cfg(tmp_path, "lat", cost="latency", target_latency_ms=40.0, iterations=2,
               metric="likelihood")
    search_arrays(*_data(), ["a", "b"], cfg, TINY, progress=False)
    log = [json.loads(line) for line in (tmp_path / "lat.log.jsonl").read_text().splitlines()]
    for e in log:
        assert e["reward"] == pytest.approx(reward(e["likelihood"], e["latency_ms"], 40.0))


def test_recalibrated_batch_norms_hold_the_path_statistics():
    """After recalibration a path in eval mode normalises with the statistics of the
    calibration batch: its outputs equal those of training mode on that batch."""
    torch.manual_seed(0)
    net = SuperNet(TINY, 3)
    x = torch.randn(64, 3, 16, 16)
    g = [0, 0, 0, 0, 0, 1, 2, 1, 1, 1]
    net.train()
    with torch.no_grad():
        for _ in range(3):  # running statistics now differ from x's
            net(torch.randn(64, 3, 16, 16) * 3 + 1, [0] * 10)
        train_mode = net(x, g)
        net.eval()
        before = net(x, g)
        net.recalibrate(x, g)
        after = net(x, g)
    assert not torch.allclose(before, train_mode, atol=1e-3)
    torch.testing.assert_close(after, train_mode, atol=2e-3, rtol=1e-3)
    assert not net.training and all(m.momentum == 0.1 for m in net.modules()
                                    if isinstance(m, torch.nn.BatchNorm2d))


def test_ranking_samples_span_the_space_and_tau_follows_the_orders(tmp_path):
    from astro_morph.search.ranking import RANK_METRICS, kendall_table, sample_across

    gs = sample_across(DEFAULT_SPACE, 10, 5, seed=0, pool=512)
    macs = [count(DEFAULT_SPACE.to_arch(g), 5, 32).macs for g in gs]
    assert len({tuple(g) for g in gs}) == 10 and macs == sorted(macs)
    assert macs[-1] > 3 * macs[0]  # from small nets to large ones
    rows = [{"supernet": dict.fromkeys(RANK_METRICS, float(i)),
             "standalone_mean": {**dict.fromkeys(RANK_METRICS, float(i)), "accuracy": -i}}
            for i in range(6)]
    taus = kendall_table(rows)
    assert taus["likelihood vs likelihood"]["tau"] == pytest.approx(1.0)
    assert taus["likelihood vs accuracy"]["tau"] == pytest.approx(-1.0)
    # Every stand-alone macro-F1 equal (all nets at the majority rate): undefined, and null
    # rather than NaN so ranking.json stays JSON; the plot titles say so.
    for r in rows:
        r["standalone_mean"]["macro_f1"] = 0.5
    tied = kendall_table(rows)
    assert tied["accuracy vs macro_f1"] == {"tau": None, "p": None}
    json.dumps(tied, allow_nan=False)
    import matplotlib

    matplotlib.use("Agg")
    from astro_morph.search.ranking import plot_ranking

    plot_ranking([{**r, "macs": 1e6 * (i + 1), "standalone_std": dict.fromkeys(RANK_METRICS, 0.0)}
                  for i, r in enumerate(rows)], tied, tmp_path / "r.png")


def test_rank_command_writes_tau_and_plot_and_resumes(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from astro_morph.cli import cli
    from astro_morph.search import ranking
    from conftest import shared_data

    data = shared_data("gz1")
    common = [str(data / "labels.csv"), "--image-dir", str(data / "images"), "--limit", "40"]
    run = CliRunner().invoke
    r = run(cli, ["search", *common, "-o", str(tmp_path / "s.json"), "--iterations", "2",
                  "--shared-steps", "2", "--controller-steps", "2", "--threads", "1"])
    assert r.exit_code == 0, r.output
    args = ["rank", *common, "--supernet", str(tmp_path / "s.json"), "-o", str(tmp_path / "r"),
            "--n", "3", "--epochs", "1", "--threads", "1"]
    r = run(cli, args)
    assert r.exit_code == 0, r.output
    assert "| supernet | likelihood | accuracy |" in r.output
    out = json.loads((tmp_path / "r" / "ranking.json").read_text())
    assert len(out["rows"]) == 3 and out["supernet_iterations"] == 2
    assert (tmp_path / "r" / "ranking.png").stat().st_size > 0
    # A rerun with the same settings reuses the finished rows: no training at all.
    real = ranking.train_standalone
    monkeypatch.setattr(ranking, "train_standalone", lambda *a, **k: 1 / 0)
    r = run(cli, args)
    assert r.exit_code == 0, r.output
    # Adding a seed trains that seed only, once per architecture.
    seeds = []
    monkeypatch.setattr(ranking, "train_standalone",
                        lambda *a, **k: seeds.append(a[-1]) or real(*a, **k))
    r = run(cli, [*args, "--seeds", "0,1"])
    assert r.exit_code == 0, r.output
    assert seeds == [1, 1, 1]
    rows = json.loads((tmp_path / "r" / "ranking.json").read_text())["rows"]
    assert all([x["seed"] for x in row["standalone"]] == [0, 1] for row in rows)
    # A stand-alone net that diverges stops the check with one line instead of ranking
    # as "always class 0" (what NaN logits score as).
    monkeypatch.setattr(ranking, "train_standalone", real)
    r = run(cli, ["rank", *common, "--supernet", str(tmp_path / "s.json"), "-o",
                  str(tmp_path / "r2"), "--n", "3", "--epochs", "1", "--threads", "1",
                  "--lr", "1e6"])
    assert r.exit_code == 1 and "diverged (non-finite outputs)" in str(r.exception)


def test_diverged_shared_weights_stop_the_search(tmp_path, monkeypatch):
    """NaN shared weights would rate every path alike: the search stops with one line, and
    no NaN checkpoint replaces the last good one."""
    from astro_morph.errors import UserError
    from astro_morph.search.supernet import SuperNet

    real = SuperNet.forward

    def diverging(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        return out * float("nan") if self.training else out

    monkeypatch.setattr(SuperNet, "forward", diverging)
    with pytest.raises(UserError, match="shared weights diverged in search iteration 1"):
        search_arrays(*_data(), ["a", "b"], _cfg(tmp_path, "z"), TINY, progress=False)
    assert not (tmp_path / "z.ckpt.pt").exists()
