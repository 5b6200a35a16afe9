"""The Python face of sentvae: what the command line does, as functions and one model object.

    import sentvae
    result = sentvae.train(data="corpus.txt", out="runs/a", epochs=4, kl_anneal="cyclical")
    model = sentvae.load("runs/a/best.pt")

`train` (sentvae/launch.py) takes the options of `sentvae train` as keyword arguments (flag names
with underscores); `load` gives a `Model`, whose methods are the other commands. Errors the user can
fix raise `sentvae.SentvaeError`; nothing is printed: progress and warnings reach `on_event(kind,
info)` if given.
"""

from dataclasses import fields

from sentvae.command_config import DecodeConfig, EvalConfig, GenerationConfig, check_option, stream_seed
from sentvae.config import SVI_LR, TrainConfig
from sentvae.errors import SentvaeError
from sentvae.launch import train  # noqa: F401  (sentvae.train, and the API's one import of it)


def load(path="checkpoints/best.pt", device: str = "auto") -> "Model":
    """A trained model from a checkpoint (best.pt or last.pt), ready to use on `device`."""
    from sentvae.checkpoint import load_model
    from sentvae.model import resolve_device

    dev = resolve_device(device)
    net, tok, ckpt = load_model(path, dev)
    return Model(net, tok, ckpt, dev, str(path))


class Model:
    """A trained sentence VAE: sentences to codes and back, samples, interpolations, scores.

    Returned by `sentvae.load(path)`. Texts are lists of strings (one sentence each, not blank);
    codes are float tensors (N, latent). Decoding options, wherever sentences come out:
    max_len, sample (ancestral sampling instead of greedy; implied by temperature, top_k, top_p),
    temperature, top_k, top_p, beam (beam search width; 1 = off), length_penalty, seed.
    `stats`, where taken, is a dict to which input counts are added: "truncated" (sentences cut
    to max_len pieces) and "unk" (words holding characters the tokenizer maps to <unk>).
    Every option is checked against the domain its command-line flag declares (sentvae/
    command_config.py), with the same message: `model.sample(n=0)` raises SentvaeError
    "-n: must be an integer in [1, 2147483647], not 0", as `sentvae sample -n 0` says.
    """

    def __init__(self, net, tokenizer, checkpoint: dict, device, source: str = "<model>"):
        self.net, self.tokenizer, self.device, self.source = net, tokenizer, device, source
        self.config = net.cfg
        self.info = checkpoint.get("info", {})

    @property
    def latent(self) -> int:
        """The size of a code: nz, or for a categorical latent K (+ nz beside a Gaussian)."""
        from sentvae.model import code_size
        return code_size(self.config)

    @property
    def labels(self):
        """A labelled model's label vocabulary (sentvae.label_vocab.LabelVocab: .attributes, .values),
        or None."""
        return self.net.labels

    @property
    def posterior_params(self) -> tuple:
        """The names of q(z|x)'s parameters, as `encode` writes them (mu, logvar for the Gaussian)."""
        head = self.net.to_posterior
        return getattr(head, "param_names", None) or head.family.param_names

    def check_code(self, code: list[float], where: str) -> None:
        """One code read from outside (a list of `latent` finite numbers), against what this model's
        conditioning takes (a categorical part: a distribution over its values); one line naming `where`."""
        if hasattr(self.net.conditioner, "check"):
            import torch
            self.net.conditioner.check(torch.tensor([code]), [where])

    def check_svi(self, svi_steps: int) -> None:
        """Refuse (one line naming --svi-steps) a refinement this model's posterior cannot take."""
        from sentvae.svi import check, refuse_labels
        if self.net.classifier is not None:
            refuse_labels(svi_steps)
        check(svi_steps, self.net.to_posterior.family)

    def __repr__(self) -> str:
        return (f"sentvae.Model({self.source!r}: {self.config.encoder} encoder, {self.config.decoder} decoder, "
                f"{self.config.posterior} latent {self.latent}, "
                f"{self.net.num_parameters():,} parameters, on {self.device})")

    # --- sentences -> codes
    def encode(self, texts: list[str], max_len: int = 100, stats: dict | None = None):
        """-> q(z|x) of each text: a posterior object of N sentences (sentvae/posteriors.py) with
        .mean() (N, latent), .params() (what `sentvae encode` writes: mu and logvar for the
        Gaussian), .rsample(), .log_prob(). `model.decode(model.encode(texts))` decodes the means."""
        from sentvae.latent import encode_texts
        max_len = check_option(TrainConfig, "max_len", max_len)
        return encode_texts(self.net, self.tokenizer, _texts(texts), max_len, self.device, stats=stats)

    def final_states(self, texts: list[str], max_len: int = 100, stats: dict | None = None):
        """(N, hidden) float32: each text's decoder state after its last word, the decoder
        conditioned on the posterior mean; for a --no-latent LM, its final hidden state. Features
        for `sentvae probe` (sentvae/features.py)."""
        from sentvae.features import final_states
        return final_states(self.net, self.tokenizer, _texts(texts), max_len, self.device, stats=stats)

    def codes(self, texts: list[str], posterior: str = "mean", seed: int = 0, stats: dict | None = None,
              first: int = 0):
        """One code per text (N, latent): the posterior mean, or a sample z ~ q(z|x), seeded by
        (seed, the text's position + first): a text's sample does not depend on its neighbours."""
        from sentvae.latent import codes
        o = GenerationConfig(posterior=posterior, seed=seed)
        return codes(self.net, self.tokenizer, _texts(texts), o.posterior, o.seed, self.device, stats, first)

    def infer(self, texts: list[str], max_len: int = 100, stats: dict | None = None):
        """-> (q(z|x) of each text, as `encode`; and a labelled model's q(c|x) of each text as
        `classify` gives it, or None)."""
        from sentvae.label_codes import described
        from sentvae.latent import infer_texts
        q, log_qc = infer_texts(self.net, self.tokenizer, _texts(texts), max_len, self.device, stats=stats)
        return q, None if log_qc is None else described(self.labels, log_qc)

    def classify(self, texts: list[str], max_len: int = 100, stats: dict | None = None) -> list[dict]:
        """A labelled model's q(c|x) of each text: {"label": {NAME: most likely VALUE},
        "probabilities": {NAME: {VALUE: probability}}}."""
        if self.labels is None:
            raise SentvaeError(f"classify: {self.source} has no labels (train it with --label-field, "
                               "--label-first-token or PATH@NAME=VALUE data)")
        return self.infer(texts, max_len, stats)[1]

    # --- codes -> sentences
    def decode(self, z, label=None, code_labels: list | None = None, label_strength: float = 1.0,
               **decoding) -> list[str]:
        """Sentences from codes z (N, latent) (a tensor or nested lists), or from a posterior (its
        means). A labelled model decodes with `label` ({NAME: VALUE} or ["NAME=VALUE"]), else each
        code's own labels if given (code_labels: per code, a {NAME: VALUE} dict as `encode` writes
        it, or None; or (where, dict) pairs, where naming the code in messages), else labels drawn
        from p(c), seeded by `seed`. label_strength S moves the set labels' embeddings S times the
        way to the asked value from the code's own (so `encode | decode` = `reconstruct` at any S),
        or from the average under p(c) for a code without labels (as `sample`)."""
        import torch
        from sentvae.codes import check_codes
        from sentvae.label_codes import check_strength, from_prior, from_rows, pushed, request
        strength = GenerationConfig(label_strength=label_strength).label_strength
        asked = request(label, self.labels, self.source)
        check_strength(strength, asked, self.labels, self.source)
        if hasattr(z, "mean") and hasattr(z, "rsample"):          # a posterior from encode()
            z = z.mean()
        z = check_codes(z, self.latent).to(self.device)     # finite float32 values, (N, latent)
        if hasattr(self.net.conditioner, "check"):          # a categorical part: on the simplex
            self.net.conditioner.check(z)
        c = None
        if self.labels is not None:
            gen = torch.Generator().manual_seed(decoding.get("seed", 0))
            prior = self.net.label_prior
            if code_labels is None:
                c = from_prior(self.labels, prior, asked, z.size(0), gen)
                if strength != 1.0:
                    c = pushed(self.labels, asked, c, strength, reference="prior", prior=prior)
            else:
                rows = [row if isinstance(row, tuple) else (f"code {i + 1}", row) for i, row in enumerate(code_labels)]
                if strength != 1.0:         # from the code's own labels, as reconstruct from q(c|x)'s
                    c = pushed(self.labels, asked, from_rows(self.labels, prior, {}, rows, gen), strength)
                else:
                    c = from_rows(self.labels, prior, asked, rows, gen)
        return self._decode(z, c, **decoding)

    def _decode(self, z, c, **decoding) -> list[str]:
        """Codes z (N, latent) on the device and labels c (or None) -> sentences."""
        from sentvae.decode import decode
        if isinstance(c, list):
            c = [p.to(self.device) for p in c]
        elif c is not None:
            c = c.to(self.device)
        return self.tokenizer.decode(decode(self.net, z, decode_config(**decoding), c))

    def iter_sample(self, n: int, seed: int = 0, batch_size: int = 256, component: int | None = None,
                    category: int | None = None, label=None, label_strength: float = 1.0, **decoding):
        """Yield n sentences from the prior z ~ p(z) (of one component of a mixture prior, or with one
        value of a categorical latent, if given), batch_size codes at a time; a labelled model's with
        `label` ({NAME: VALUE} or ["NAME=VALUE"]), the attributes not given drawn from p(c);
        label_strength S: the asked labels' embeddings S times the way from their average under p(c)
        to the asked value (1: the value; above 1, past it)."""
        import torch
        from sentvae.label_codes import check_strength, from_prior, pushed, request
        o = GenerationConfig(n=n, seed=seed, batch_size=batch_size, component=component, category=category,
                             label_strength=label_strength)
        n, seed, batch_size, component, category = o.n, o.seed, o.batch_size, o.component, o.category
        decode_config(**decoding)                # checked now, not after the first batch
        asked = request(label, self.labels, self.source)
        check_strength(o.label_strength, asked, self.labels, self.source)
        prior, where = self.net.prior, {}
        if category is not None:
            count = getattr(prior, "categories", None)
            if count is None:
                raise SentvaeError(f"--category: {self.source} has no categorical latent (--latent-type categorical) "
                                   "to pick from")
            if category >= count:
                raise SentvaeError(f"--category: must be an integer in [0, {count - 1}], not {category!r}")
            where = {"category": category}
        if component is not None:
            count = getattr(prior, "components", None)
            if count is None:
                raise SentvaeError(f"--component: {self.source} has no mixture prior (--prior gmm) to pick from")
            if component >= count:
                raise SentvaeError(f"--component: must be an integer in [0, {count - 1}], not {component!r}")
            where = {"component": component}
        gen = torch.Generator().manual_seed(seed)
        for start in range(0, n, batch_size):
            count = min(batch_size, n - start)
            with torch.inference_mode():
                z = prior.sample(count, gen, **where).to(self.device)
            # after z, from the same stream: the same z whatever labels are asked for
            c = None if self.labels is None else from_prior(self.labels, self.net.label_prior, asked, count, gen)
            if c is not None and o.label_strength != 1.0:
                c = pushed(self.labels, asked, c, o.label_strength, reference="prior", prior=self.net.label_prior)
            # each batch its own sampling stream, reproducibly
            yield from self._decode(z, c, **{**decoding, "seed": stream_seed(seed, start)})

    def sample(self, n: int = 10, seed: int = 0, batch_size: int = 256, component: int | None = None,
               category: int | None = None, label=None, label_strength: float = 1.0, **decoding) -> list[str]:
        """n sentences from the prior z ~ p(z) (of one component of a mixture prior, or with one value
        of a categorical latent, if given); a labelled model's with `label` ({NAME: VALUE} or
        ["NAME=VALUE"]), the others drawn from p(c); label_strength: as iter_sample's."""
        return list(self.iter_sample(n, seed, batch_size, component, category, label, label_strength, **decoding))

    def interpolate(self, a: str, b: str, steps: int = 8, method: str = "lerp", posterior: str = "mean",
                    seed: int = 0, label=None, label_strength: float = 1.0, **decoding) -> list[str]:
        """Sentences decoded at `steps` points from z(a) to z(b), endpoints included. A labelled
        model's labels move from q(c|a)'s most likely values to q(c|b)'s with z, but for those
        `label` holds ({NAME: VALUE} or ["NAME=VALUE"]); label_strength S moves a held label's
        embedding S times the way from the path's own mix at that point (0: as if not held)."""
        import torch
        from sentvae.label_codes import check_strength, from_classifier, path, pushed, request
        from sentvae.latent import code_of, infer_texts, lerp, slerp
        o = GenerationConfig(steps=steps, method=method, posterior=posterior, seed=seed, label_strength=label_strength)
        decode_config(**decoding)
        asked = request(label, self.labels, self.source)
        check_strength(o.label_strength, asked, self.labels, self.source)
        if o.method == "slerp" and self.config.latent_type != "gaussian":
            raise SentvaeError("--method slerp: a categorical code's category part lives on the simplex, which "
                               "a great circle leaves; use lerp (it mixes the categories' embeddings)")
        for name, s in (("A", a), ("B", b)):
            if not s.strip():
                raise SentvaeError(f"interpolate: sentence {name} is empty")
        q, log_qc = infer_texts(self.net, self.tokenizer, [a, b], device=self.device)
        z_ab = code_of(q, o.posterior, o.seed, 0, self.device)
        t = torch.linspace(0, 1, o.steps, device=self.device)
        z = (slerp if o.method == "slerp" else lerp)(z_ab[0], z_ab[1], t)
        c = None
        if log_qc is not None:   # the path of the ends' own values, then the held labels moved on it
            c = pushed(self.labels, asked, path(self.labels, from_classifier(self.labels, {}, log_qc), t),
                       o.label_strength)
        return self._decode(z, c, **{**decoding, "seed": o.seed})

    def reconstruct(self, texts: list[str], posterior: str = "mean", seed: int = 0, stats: dict | None = None,
                    first: int = 0, decode_seed: int | None = None, label=None, label_strength: float = 1.0,
                    **decoding) -> list[str]:
        """Encode then decode each text (a sampled code seeded as in `codes`; sampled words from
        decode_seed, by default seed). A labelled model decodes with q(c|x)'s most likely labels,
        but for those `label` sets ({NAME: VALUE} or ["NAME=VALUE"]): transfer, z from the text;
        label_strength S moves the set labels' embeddings S times the way from the text's own value
        to the asked one (0: reconstruct, 1: transfer, above 1: past it)."""
        from sentvae.label_codes import check_strength, from_classifier, pushed, request
        from sentvae.latent import code_of, infer_texts
        o = GenerationConfig(posterior=posterior, seed=seed, label_strength=label_strength)   # before decode_seed
        decode_config(**{**decoding, "seed": seed if decode_seed is None else decode_seed})
        asked = request(label, self.labels, self.source)
        check_strength(o.label_strength, asked, self.labels, self.source)
        q, log_qc = infer_texts(self.net, self.tokenizer, _texts(texts), device=self.device, stats=stats)
        z = code_of(q, o.posterior, o.seed, first, self.device)
        c = None if log_qc is None else pushed(self.labels, asked, from_classifier(self.labels, {}, log_qc),
                                               o.label_strength)          # _decode moves it to the device
        return self._decode(z, c, **{**decoding, "seed": seed if decode_seed is None else decode_seed})

    # --- scores
    def score(self, texts: list[str], k: int = 500, seed: int = 0, max_tokens: int = 2000,
              max_len: int = 100, svi_steps: int = 0, svi_lr: float = SVI_LR) -> list[dict]:
        """Per sentence, as `sentvae eval --per-sentence`: index, words (+EOS), elbo (-ELBO),
        iw_nll (importance-weighted -log p(x), K = k), ess, kl; nats."""
        return list(self.evaluate(texts, k, seed, max_tokens, max_len, per_sentence=True, svi_steps=svi_steps,
                                  svi_lr=svi_lr).sentence_rows())

    def evaluate(self, texts, k: int = 500, seed: int = 0, max_tokens: int = 2000, max_len: int = 100,
                 per_sentence: bool = False, on_progress=None, svi_steps: int = 0, svi_lr: float = SVI_LR):
        """Every eval figure over texts (a list of strings, or a Corpus): -> EvalResult.
        svi_steps: first refine each sentence's posterior by that many gradient steps of size
        svi_lr on its own ELBO (semi-amortized inference, sentvae/svi.py)."""
        from sentvae.corpus import Corpus, corpus_from_texts
        from sentvae.evaluate import evaluate
        o = EvalConfig(iw_samples=k, max_tokens=max_tokens, seed=seed, svi_steps=svi_steps, svi_lr=svi_lr)
        max_len = check_option(TrainConfig, "max_len", max_len)
        corpus = texts if isinstance(texts, Corpus) else corpus_from_texts(_texts(texts), self.tokenizer, max_len)
        if len(corpus) == 0:
            raise SentvaeError("texts: no sentence to evaluate (the list is empty)")
        return evaluate(self.net, corpus, o.iw_samples, o.max_tokens, self.device, o.seed, on_progress=on_progress,
                        per_sentence=per_sentence, svi_steps=o.svi_steps, svi_lr=o.svi_lr)


DECODE_OPTIONS = tuple(f.name for f in fields(DecodeConfig))


def decode_config(**decoding) -> DecodeConfig:
    """Decoding options (max_len, sample, temperature, top_k, top_p, beam, length_penalty, seed) ->
    DecodeConfig, each checked (sampling is implied by temperature, top_k or top_p)."""
    unknown = sorted(set(decoding) - set(DECODE_OPTIONS))
    if unknown:
        raise SentvaeError(f"unknown decoding option(s): {', '.join(unknown)}")
    return DecodeConfig(**decoding)


def _texts(texts) -> list[str]:
    if isinstance(texts, str):
        raise SentvaeError("texts: give a list of sentences, not one string")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise SentvaeError(f"texts[{i}]: not a sentence ({t!r})")
    return texts
