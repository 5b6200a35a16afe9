import json
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from sentvae.checkpoint import load_model
from sentvae.decode import DecodeConfig, beam_search, decode, filter_logits, greedy, sample, sequence_logprob
from sentvae.errors import SentvaeError
from sentvae.latent import codes
from conftest import BUNDLED, ROOT, run_cli


@pytest.fixture(scope="module")
def mt(trained):
    out, _ = trained
    model, tok, _ = load_model(out / "best.pt")
    return model, tok, out / "best.pt"


def _z(n=12, nz=8, seed=0):
    return torch.randn(n, nz, generator=torch.Generator().manual_seed(seed))


def test_greedy_equals_beam_1_and_top_k_1(mt):
    model, _, _ = mt
    z = _z()
    g = greedy(model, z, 30)
    assert beam_search(model, z, 1, 30)[0] == g
    assert sample(model, z, 30, top_k=1, generator=torch.Generator().manual_seed(5)) == g
    assert decode(model, z, DecodeConfig(max_len=30, beam=1)) == g


def test_beam_finds_at_least_the_greedy_score(mt):
    model, _, _ = mt
    z = _z(20)
    g = greedy(model, z, 30)
    b, scores = beam_search(model, z, 5, 30, length_penalty=0.0)     # rank by total log p
    lp_g = sequence_logprob(model, z, g)
    lp_b = sequence_logprob(model, z, b)
    assert torch.allclose(lp_b, torch.tensor(scores), atol=1e-3)      # the reported score is real
    assert torch.all(lp_b >= lp_g - 1e-4)


def test_low_temperature_approaches_greedy(mt):
    model, _, _ = mt
    z = _z()
    g = greedy(model, z, 30)
    cold = sample(model, z, 30, temperature=1e-4, generator=torch.Generator().manual_seed(0))
    hot = sample(model, z, 30, temperature=1.5, generator=torch.Generator().manual_seed(0))
    assert sum(a == b for a, b in zip(cold, g)) == len(g)
    assert hot != g


def test_same_seed_same_samples(mt):
    model, _, _ = mt
    z = _z()
    cfg = DecodeConfig(max_len=30, sample=True, top_p=0.9, seed=3)
    assert decode(model, z, cfg) == decode(model, z, cfg)
    assert decode(model, z, cfg) != decode(model, z, DecodeConfig(max_len=30, sample=True, top_p=0.9, seed=4))


def test_filters_keep_the_right_pieces():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.7)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.8)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.81)).tolist() == [[False, False, False, True]]
    assert not torch.isinf(filter_logits(logits, top_p=0.01))[0, 0]   # the top piece always stays


def test_conflicting_options_are_refused():
    with pytest.raises(SentvaeError, match="--beam cannot be combined"):
        DecodeConfig(beam=3, sample=True)
    with pytest.raises(SentvaeError, match="--top-p"):
        DecodeConfig(top_p=0.0)


def test_interpolation_endpoints_are_the_reconstructions(mt, monkeypatch, capsys):
    model, tok, ck = mt
    a, b = "the old man read a book .", "did the dog run to the park ?"
    code, out, err = run_cli(["interpolate", a, b, "--steps", "5", "-c", ck], monkeypatch, capsys)
    assert code == 0, err
    path = out.splitlines()
    code, out, err = run_cli(["reconstruct", a, b, "-c", ck], monkeypatch, capsys)
    assert out.splitlines() == [path[0], path[-1]]
    z = codes(model, tok, [a, b])
    assert tok.decode(greedy(model, z, 60)) == [path[0], path[-1]]


def test_encode_decode_round_trip_equals_reconstruct(mt, tmp_path, monkeypatch, capsys):
    _, _, ck = mt
    lines = (BUNDLED / "test.txt").read_text().splitlines()[:30]
    lines.insert(4, "")                       # a blank line stays in place
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n")
    code, enc, err = run_cli(["encode", "-i", src, "-c", ck], monkeypatch, capsys)
    assert code == 0, err
    rows = [json.loads(x) for x in enc.splitlines()]
    assert len(rows) == 31 and rows[4]["mu"] is None and len(rows[0]["mu"]) == 8
    code, dec, err = run_cli(["decode", "-c", ck], monkeypatch, capsys, stdin=enc)
    assert code == 0, err
    code, rec, err = run_cli(["reconstruct", "-i", src, "-c", ck], monkeypatch, capsys)
    assert code == 0, err
    assert dec == rec
    assert len(rec.splitlines()) == 31 and rec.splitlines()[4] == ""


def test_reconstruct_keeps_order_and_count_from_stdin(mt, monkeypatch, capsys):
    _, _, ck = mt
    lines = (BUNDLED / "test.txt").read_text().splitlines()[:50]
    code, out, err = run_cli(["reconstruct", "-c", ck, "--batch-size", "7", "--json"], monkeypatch, capsys,
                             stdin="\n".join(lines) + "\n")
    assert code == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    assert [r["text"] for r in rows] == lines


def test_bleu_matches_the_sacrebleu_cli(mt, tmp_path, monkeypatch, capsys):
    _, _, ck = mt
    refs = (BUNDLED / "test.txt").read_text().splitlines()[:60]
    (tmp_path / "ref.txt").write_text("\n".join(refs) + "\n")
    code, out, err = run_cli(["reconstruct", "-i", tmp_path / "ref.txt", "-c", ck, "--bleu", "--json"],
                             monkeypatch, capsys)
    assert code == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    ours = rows[-1]["bleu"]
    (tmp_path / "hyp.txt").write_text("\n".join(r["reconstruction"] for r in rows[:-1]) + "\n")
    r = subprocess.run([sys.executable, "-m", "sacrebleu", str(tmp_path / "ref.txt"), "-i", str(tmp_path / "hyp.txt"),
                        "-b"], capture_output=True, text=True, check=True)
    assert ours == pytest.approx(float(r.stdout.strip()), abs=0.01)
    assert f"BLEU = {ours:.2f}" in err


@pytest.mark.parametrize("payload,needle", [
    ('{"z": [1, 2]}\n', "line 1: \"z\" has 2 numbers, this model's latent has 8"),
    ('{"mu": [0,0,0,0,0,0,0,0]}\n{"text": "x"}\n', "line 2: expected a JSON object with \"z\" or \"mu\""),
    ('not json\n', "line 1: not JSON"),
    ('', "<stdin>: no code to decode (the input is empty"),
])
def test_decode_bad_input(mt, payload, needle, monkeypatch, capsys):
    _, _, ck = mt
    code, out, err = run_cli(["decode", "-c", ck], monkeypatch, capsys, stdin=payload)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_generation_bad_usage(mt, monkeypatch, capsys):
    _, _, ck = mt
    code, out, err = run_cli(["sample", "-c", ck, "--beam", "3", "--top-p", "0.9"], monkeypatch, capsys)
    assert code == 2 and "--beam cannot be combined" in err and out == ""
    code, out, err = run_cli(["reconstruct", "-c", ck], monkeypatch, capsys, stdin="")
    assert code == 2 and "empty" in err
    code, out, err = run_cli(["reconstruct", "x", "-c", "nope.pt"], monkeypatch, capsys)
    assert code == 2 and "nope.pt" in err


def test_every_subcommand_help_skips_torch():
    code = ("import sys, runpy\nfor cmd in ['sample', 'interpolate', 'reconstruct', 'encode', 'decode', 'eval', 'info', 'tokenize']:\n"
            "    sys.argv = ['sentvae', cmd, '--help']\n"
            "    try:\n        runpy.run_module('sentvae', run_name='__main__')\n    except SystemExit:\n        pass\n"
            "sys.stderr.write('HEAVY=' + ','.join(m for m in ('torch', 'datasets', 'sentencepiece') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.stdout.count("Usage") == 8 and r.stderr.strip().endswith("HEAVY="), r.stderr[-300:]


# --- exactness on a tiny model: beam search against brute force, sampling against its distribution

@pytest.fixture(scope="module")
def tiny_decoder():
    """A random LSTM decoder over 7 pieces (5 it may output: UNK, EOS and three words), peaked
    enough that hypotheses differ clearly."""
    from sentvae.config import ModelConfig
    from sentvae.model import build_model
    torch.manual_seed(11)
    model = build_model(ModelConfig(vocab_size=7, emb_dim=8, hidden=8, latent=2, dropout=0.0)).eval()
    with torch.no_grad():
        model.out_bias.copy_(torch.randn(7) * 2)
        model.decoder.z_to_state.weight.mul_(4)
    return model


def _all_hypotheses(model, z, max_len):
    """Every hypothesis beam search can return for code z: (pieces, total log p), those ending with
    EOS within max_len steps and those cut at max_len, scored with full-vocabulary log-softmax."""
    from sentvae.decode import NEVER
    from sentvae.tokenizer import EOS
    outputs = [t for t in range(model.cfg.vocab_size) if t not in NEVER]
    words = [t for t in outputs if t != EOS]
    found = []

    def walk(prefix, state, tok, logp):
        with torch.no_grad():
            logits, state = model.step(torch.tensor([tok]), state)
        lp = F.log_softmax(logits[0].float(), dim=-1)
        found.append((prefix, logp + float(lp[EOS]), len(prefix) + 1))         # ends here
        if len(prefix) + 1 == max_len:
            for w in words:                                                     # cut at max_len
                found.append((prefix + [w], logp + float(lp[w]), max_len))
            return
        for w in words:
            walk(prefix + [w], state, w, logp + float(lp[w]))

    from sentvae.tokenizer import BOS
    walk([], model.init_state(z.unsqueeze(0)), BOS, 0.0)
    return found


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_search_equals_brute_force_enumeration(tiny_decoder, length_penalty):
    model, max_len = tiny_decoder, 4
    z = torch.randn(6, 2, generator=torch.Generator().manual_seed(2))
    # beam width above the number of hypotheses (4 + 16 + 64 + 256 + 256): the search is exhaustive
    ids, scores = beam_search(model, z, beam=600, max_len=max_len, length_penalty=length_penalty)
    for i in range(len(z)):
        hyps = _all_hypotheses(model, z[i], max_len)
        best = max(hyps, key=lambda h: h[1] / h[2] ** length_penalty)
        assert ids[i] == best[0], (i, ids[i], best)
        assert scores[i] == pytest.approx(best[1], abs=1e-4)
    # a narrow beam can only do as well as the exhaustive one, never better
    narrow, narrow_scores = beam_search(model, z, beam=3, max_len=max_len, length_penalty=0.0)
    wide = [max(h[1] for h in _all_hypotheses(model, z[i], max_len)) for i in range(len(z))]
    assert all(n <= w + 1e-5 for n, w in zip(narrow_scores, wide))


def _reference_beam(model, z, beam, max_len, length_penalty):
    """Beam search written plainly for one code: lists of (pieces, log p, finished), ranked by
    log p / length ** length_penalty (length counts EOS); a finished hypothesis carries over."""
    from sentvae.decode import NEVER
    from sentvae.tokenizer import BOS, EOS
    hyps = [([], 0.0, False, model.init_state(z.unsqueeze(0)))]
    for _ in range(max_len):
        cands = []
        for pieces, score, done, state in hyps:
            if done:
                cands.append((pieces, score, True, state))
                continue
            with torch.no_grad():
                logits, new = model.step(torch.tensor([pieces[-1] if pieces else BOS]), state)
            lp = F.log_softmax(logits[0].float(), dim=-1)
            for t in range(model.cfg.vocab_size):
                if t not in NEVER:
                    cands.append((pieces + [t], score + float(lp[t]), t == EOS, new))
        rank = lambda h: h[1] / max(len(h[0]), 1) ** length_penalty
        hyps = sorted(cands, key=rank, reverse=True)[:beam]
    best = max(hyps, key=lambda h: h[1] / max(len(h[0]), 1) ** length_penalty)
    return [t for t in best[0] if t != EOS], best[1]


@pytest.mark.parametrize("beam", [2, 3, 5])
@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_batched_beam_search_equals_a_plain_one(tiny_decoder, beam, length_penalty):
    model, max_len = tiny_decoder, 6
    z = torch.randn(40, 2, generator=torch.Generator().manual_seed(5)) * 2
    ids, scores = beam_search(model, z, beam=beam, max_len=max_len, length_penalty=length_penalty)
    for i in range(len(z)):
        ref_ids, ref_score = _reference_beam(model, z[i], beam, max_len, length_penalty)
        assert ids[i] == ref_ids, (i, ids[i], ref_ids)
        assert scores[i] == pytest.approx(ref_score, abs=1e-4)


def _filtered(p: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """The distribution sampling must follow, by definition: the k most likely pieces, then the
    smallest most-likely set whose probability reaches top_p, renormalised each time."""
    order = torch.argsort(p, descending=True)
    q = torch.zeros_like(p)
    keep = order[:top_k] if top_k else order
    q[keep] = p[keep]
    q /= q.sum()
    if top_p < 1.0:
        sorted_q = q[order]
        n = int((torch.cumsum(sorted_q, 0) < top_p).sum()) + 1
        r = torch.zeros_like(q)
        r[order[:n]] = q[order[:n]]
        q = r / r.sum()
    return q


def _chi_square_critical(df: int) -> float:
    """The chi-square quantile at 1 - 1e-4 (Wilson-Hilferty; z = 3.719)."""
    z = 3.719
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 1.0), (0.6, 0, 1.0), (1.4, 3, 1.0),
                                                     (1.0, 0, 0.7), (0.8, 4, 0.9), (1.0, 0, 0.95)])
def test_sampled_frequencies_match_the_filtered_distribution(tiny_decoder, temperature, top_k, top_p):
    from sentvae.decode import NEVER
    model, n = tiny_decoder, 20000
    z = torch.randn(1, 2, generator=torch.Generator().manual_seed(4)).expand(n, -1)
    first = [row[0] if row else 3 for row in                                  # an empty row: EOS first
             sample(model, z, max_len=1, temperature=temperature, top_k=top_k, top_p=top_p,
                    generator=torch.Generator().manual_seed(9))]
    with torch.no_grad():
        logits, _ = model.step(torch.full((1,), 2), model.init_state(z[:1]))
    logits = logits.float()
    logits[:, NEVER] = -math.inf
    p = _filtered(F.softmax(logits / temperature, dim=-1)[0].double(), top_k, top_p)
    counts = torch.bincount(torch.tensor(first), minlength=p.numel()).double()
    support = p > 0
    assert counts[~support].sum() == 0, "a filtered-out piece was sampled"
    expected = p[support].double() * n
    stat = float(((counts[support] - expected) ** 2 / expected).sum())
    df = int(support.sum()) - 1
    if df > 0:
        assert stat < _chi_square_critical(df), (stat, df, counts, expected)
    if top_k:
        assert int(support.sum()) <= top_k
