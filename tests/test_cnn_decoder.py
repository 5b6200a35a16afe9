"""The dilated-CNN decoder (sentvae/model/cnn.py): causal, incremental decoding equal to the
full forward (also after beam search's reordering), silence_latent, the receptive field it
claims, and the decoder interface SentenceVAE, greedy and beam search rely on."""

import numpy as np
import pytest
import torch

from sentvae.config import ModelConfig
from sentvae.corpus import collate, corpus_from_ids
from sentvae.decode import beam_search, greedy
from sentvae.errors import SentvaeError
from sentvae.model.cnn import CNNDecoder, receptive_field
from sentvae.model import build_model
from sentvae.tokenizer import BOS, EOS, PAD

E, NZ, H = 12, 5, 16
# (dilations, kernel size): Yang et al.'s smallest stack, a wider kernel, a kernel of 2 whose
# dilations leave a gap (offset 2 unseen), and pointwise convolutions (RF 1)
SHAPES = [((1, 2, 4), 3), ((2, 1), 4), ((1, 3), 2), ((1, 1), 1)]


def _decoder(dilations=(1, 2, 4), kernel_size=3, seed=0):
    torch.manual_seed(seed)
    return CNNDecoder(E, NZ, H, dilations=dilations, kernel_size=kernel_size).eval()


def _inputs(B=3, T=20, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, E, generator=g), torch.randn(B, NZ, generator=g)


@pytest.mark.parametrize("dilations,k", SHAPES)
def test_no_later_input_changes_an_earlier_output(dilations, k):
    dec = _decoder(dilations, k)
    emb, z = _inputs()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        out = dec(emb, z)                                           # (B, T, H)
        for s in range(emb.size(1)):                                # change every input from s on
            emb2 = emb.clone()
            emb2[:, s:] = torch.randn(emb2[:, s:].shape, generator=g)
            out2 = dec(emb2, z)
            assert torch.allclose(out[:, :s], out2[:, :s], atol=1e-6), f"position < {s} saw input {s}"
            assert not torch.allclose(out[:, s], out2[:, s], atol=1e-4)   # position s itself did change


@pytest.mark.parametrize("dilations,k", SHAPES)
def test_step_by_step_equals_the_full_forward_also_after_reordering(dilations, k):
    dec = _decoder(dilations, k)
    emb, z = _inputs(B=4, T=18)
    index = torch.tensor([2, 0, 2, 1])          # a permutation with a repeat, as beam search makes
    cut = 7
    with torch.no_grad():
        full = dec(emb, z)
        state, steps = dec.init_state(z), []
        for t in range(emb.size(1)):
            h, state = dec.step(emb[:, t:t + 1], state)            # (B, 1, H)
            steps.append(h)
        assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)

        # reorder after `cut` steps, then go on with the reordered rows' inputs
        state, steps = dec.init_state(z), []
        for t in range(cut):
            h, state = dec.step(emb[:, t:t + 1], state)
            steps.append(h)
        state = dec.reorder_state(state, index)
        for t in range(cut, emb.size(1)):
            h, state = dec.step(emb[index, t:t + 1], state)
            steps.append(h)
        expect = dec(emb[index], z[index])      # row i is now row index[i], prefix and all
    got = torch.cat(steps, dim=1)
    assert torch.allclose(got[:, :cut], full[:, :cut], atol=1e-5)
    assert torch.allclose(got[:, cut:], expect[:, cut:], atol=1e-5)


def test_reordering_really_moves_the_history():
    """With inputs that differ per row, a reorder that kept the old rows' buffers would be
    caught: the reordered continuation must differ from the unreordered one."""
    dec = _decoder()
    emb, z = _inputs(B=2, T=10)
    index = torch.tensor([1, 0])
    with torch.no_grad():
        state = dec.init_state(z)
        for t in range(5):
            _, state = dec.step(emb[:, t:t + 1], state)
        moved = dec.reorder_state(state, index)
        same_z = {"bufs": state["bufs"], "z": moved["z"]}             # z moved, history not
        a, _ = dec.step(emb[index, 5:6], moved)
        b, _ = dec.step(emb[index, 5:6], same_z)
    assert not torch.allclose(a, b, atol=1e-4)


def test_silence_latent_makes_the_output_that_of_z_zero_whatever_z():
    dec = _decoder()
    emb, z = _inputs()
    z2 = torch.randn_like(z) * 3
    with torch.no_grad():
        at_zero = dec(emb, torch.zeros_like(z))
        assert not torch.allclose(dec(emb, z), at_zero, atol=1e-4)  # z matters before
        bias = dec.inp.bias.clone()
        dec.silence_latent()
        assert torch.allclose(dec(emb, z), at_zero, atol=1e-6)
        assert torch.allclose(dec(emb, z2), at_zero, atol=1e-6)
        state, steps = dec.init_state(z2), []
        for t in range(emb.size(1)):
            h, state = dec.step(emb[:, t:t + 1], state)
            steps.append(h)
    assert torch.allclose(torch.cat(steps, dim=1), at_zero, atol=1e-5)
    assert torch.equal(dec.inp.bias, bias) and bias.abs().sum() > 0     # biases kept


@pytest.mark.parametrize("dilations,k", SHAPES + [((1, 2, 4, 8, 16), 3)])
def test_receptive_field_is_the_measured_dependency(dilations, k):
    rf = receptive_field(dilations, k)
    assert rf == 1 + (k - 1) * sum(dilations)
    dec = _decoder(dilations, k).double()      # float64: the farthest paths' effect is ~1e-7
    assert dec.receptive_field == rf
    T = rf + 6
    emb, z = (a.double() for a in _inputs(B=1, T=T))
    t = T - 1
    changed = []
    with torch.no_grad():
        ref = dec(emb, z)[0, t]
        for offset in range(T):                                     # the input at t - offset
            emb2 = emb.clone()
            emb2[0, t - offset] += 3.0
            changed.append(not torch.equal(dec(emb2, z)[0, t], ref))   # exactly equal when unseen
    seen = [o for o, c in enumerate(changed) if c]
    assert max(seen) == rf - 1                  # the farthest input the output sees ...
    assert not any(changed[rf:])                # ... and nothing at distance rf or beyond
    ds = sorted(dilations)
    if k > 1 and all(d <= (k - 1) * sum(ds[:i]) + 1 for i, d in enumerate(ds)):
        assert seen == list(range(rf))          # contiguous dilations: every offset is seen
    if (tuple(dilations), k) == ((1, 3), 2):
        assert 2 not in seen                    # RF is a span: offsets {0,1} + {0,3} skip 2


@pytest.mark.parametrize("dilations,k", SHAPES)
def test_flops_per_token_counts_every_matrix_product(dilations, k):
    """The analytic count bench/cnn_decoder_speed.py prints, against torch's own counter."""
    from torch.utils.flop_counter import FlopCounterMode
    dec = _decoder(dilations, k)
    emb, z = _inputs(B=3, T=7)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        dec(emb, z)
    assert counter.get_total_flops() == 3 * 7 * dec.flops_per_token()


def test_bad_shapes_are_one_clear_error():
    with pytest.raises(SentvaeError, match="--dilations"):
        CNNDecoder(E, NZ, H, dilations=())
    with pytest.raises(SentvaeError, match="--dilations"):
        CNNDecoder(E, NZ, H, dilations=(1, 0))
    with pytest.raises(SentvaeError, match="--kernel-size"):
        CNNDecoder(E, NZ, H, kernel_size=0)


# --- the interface: SentenceVAE around an LSTM encoder and this decoder (build_model's --decoder cnn)

V = 40


@pytest.fixture
def vae():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=V, emb_dim=E, hidden=H, latent=NZ, dropout=0.0, decoder="cnn", dilations=(1, 2))
    model = build_model(cfg).eval()
    assert isinstance(model.decoder, CNNDecoder) and model.decoder.receptive_field == 7
    return model


def _batch(seqs):
    return collate(corpus_from_ids(seqs), np.arange(len(seqs)))


SEQS = [[5, 6, 7, 8, 9, 10, 11, 12, 13], [14, 15, 16], [17, 18, 19, 20, 21]]


def test_the_vae_trains_scores_and_ignores_padding(vae):
    batch = _batch(SEQS)
    x = batch.tokens
    vae.train()
    terms = vae(batch)
    assert terms.ll.shape == (3, 1) and torch.all(terms.ll < 0) and terms.posterior.mean().shape == (3, NZ)
    (-terms.ll.mean()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in vae.decoder.parameters())
    vae.eval()
    z = torch.randn(1, NZ)
    with torch.no_grad():
        x1 = _batch([SEQS[1]]).tokens
        alone = vae.log_likelihood(z, x1[:, :-1], x1[:, 1:])
        beside = vae.log_likelihood(z.expand(3, -1), x[:, :-1], x[:, 1:])
    assert torch.allclose(alone[0], beside[1], atol=1e-5)


def _logprob(vae, z, ids, ended):
    """log p(ids [+ EOS] | z) through the full forward."""
    tgt = ids + [EOS] if ended else ids
    inp = torch.tensor([[BOS] + tgt[:-1]])
    with torch.no_grad():
        return vae.log_likelihood(z.unsqueeze(0), inp, torch.tensor([tgt]))[0].item()


def test_greedy_and_beam_search_decode_through_the_buffers(vae):
    z = torch.randn(6, NZ, generator=torch.Generator().manual_seed(3)) * 2
    max_len = 12
    out = greedy(vae, z, max_len)
    assert len(out) == 6 and all(len(s) <= max_len and not {PAD, BOS, EOS} & set(s) for s in out)
    with torch.no_grad():
        for i, ids in enumerate(out):             # greedy is the argmax of the full forward
            ended = len(ids) < max_len
            tgt = ids + [EOS] if ended else ids
            inp = torch.tensor([[BOS] + tgt[:-1]])
            logits = vae.logits(vae.decoder(vae.emb(inp), z[i:i + 1]))[0]     # (L, V)
            logits[:, [PAD, BOS]] = -float("inf")
            assert logits.argmax(-1).tolist() == tgt
    best, scores = beam_search(vae, z, 4, max_len, length_penalty=0.0)
    assert all(not {PAD, BOS, EOS} & set(s) for s in best)
    for i, (ids, score) in enumerate(zip(best, scores)):   # beam's score is the model's log p
        assert score == pytest.approx(_logprob(vae, z[i], ids, len(ids) < max_len), abs=1e-3)
        assert score >= _logprob(vae, z[i], out[i], len(out[i]) < max_len) - 1e-4
