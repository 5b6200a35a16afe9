"""The networks. `build_model(config)` is the one place that looks at the architecture."""

from dataclasses import replace

import torch
import torch.nn as nn

from sentvae.categorical import (Categorical, CategoricalAndNormal, CategoricalHead, CategoryCode, CategoryHead,
                                 UniformCategorical, WithCategory)
from sentvae.config import ModelConfig
from sentvae.errors import SentvaeError
from sentvae.model.cnn import CNNDecoder, receptive_field
from sentvae.model.vae import NoCode, NoEncoder, SentenceVAE
from sentvae.flows import IAF, IAFHead
from sentvae.labelled import LabelClassifier, LabelCode
from sentvae.mixture import ComponentHead, GaussianMixture, WithComponent
from sentvae.posteriors import Gaussian, GaussianHead, Point, PointHead
from sentvae.priors import PointPrior, StandardNormal
from sentvae.vmf import SphereUniform, VMFHead, VonMisesFisher, constants as vmf_constants


def _encoder(cfg: ModelConfig) -> nn.Module:
    if cfg.encoder == "lstm":
        from sentvae.model.lstm import LSTMEncoder
        return LSTMEncoder(cfg)
    if cfg.encoder == "transformer":
        from sentvae.model.transformer import TransformerEncoder
        return TransformerEncoder(cfg)
    raise SentvaeError(f"--encoder: unknown architecture {cfg.encoder!r}")


def _decoder(cfg: ModelConfig, cond_dim: int | None = None) -> nn.Module:
    """cond_dim: the size of the conditioning the decoder reads (default z's; a labelled model's is larger)."""
    if cfg.decoder == "lstm":
        from sentvae.model.lstm import LSTMDecoder
        return LSTMDecoder(cfg, cond_dim)
    if cfg.decoder == "transformer":
        from sentvae.model.transformer import TransformerDecoder
        return TransformerDecoder(cfg, cond_dim)
    if cfg.decoder == "cnn":
        # no dropout inside the blocks: cfg.dropout already acts on the decoder's input embeddings and
        # outputs (SentenceVAE), as for the LSTM decoder, whose own dropout acts only between layers
        return CNNDecoder(cfg.emb_dim, cond_dim or cfg.latent, cfg.hidden, cfg.dilations, cfg.kernel_size)
    raise SentvaeError(f"--decoder: unknown architecture {cfg.decoder!r}")


def build_model(cfg: ModelConfig) -> SentenceVAE:
    """The one place that looks at the architecture and the latent family."""
    nz = cfg.latent
    if cfg.no_latent:        # the LM baseline: a point latent at 0, read from nothing
        return SentenceVAE(cfg, NoEncoder(), _decoder(cfg), lambda summary: PointHead(nz), PointPrior(nz), NoCode())
    if cfg.latent_type != "gaussian":   # a code [one-hot c ; z], seen by the decoder as [embedding of c ; z]
        K, rest = cfg.categories, (nz if cfg.latent_type == "categorical+gaussian" else 0)
        encoder, decoder = _encoder(cfg), _decoder(replace(cfg, latent=nz + rest))
        conditioner = CategoryCode(K, nz, rest)
        if rest:
            head = lambda summary: CategoryHead(GaussianHead(summary, nz), summary, K, cfg.vocab_size)   # noqa: E731
            return SentenceVAE(cfg, encoder, decoder, head, CategoricalAndNormal(K, nz), conditioner)
        return SentenceVAE(cfg, encoder, decoder, lambda summary: CategoricalHead(summary, K, cfg.vocab_size),
                           UniformCategorical(K), conditioner)
    conditioner = classifier = None
    if cfg.labels is not None:   # the decoder reads [z; the labels' embeddings]; q(c|x) beside q(z|x)
        sizes = [len(values) for _, values in cfg.labels["attributes"]]
        encoder, decoder = _encoder(cfg), _decoder(cfg, cond_dim=nz + len(sizes) * cfg.label_dim)
        conditioner = LabelCode(sizes, cfg.label_dim)
        classifier = lambda summary: LabelClassifier(summary, sizes)   # noqa: E731
    else:
        encoder, decoder = _encoder(cfg), _decoder(cfg)
    posterior = {"gaussian": lambda summary: GaussianHead(summary, nz),
                 "iaf": lambda summary: IAFHead(summary, nz, cfg.flow_steps),
                 "vmf": lambda summary: VMFHead(summary, nz, cfg.kappa)}[cfg.posterior]
    if cfg.prior == "gmm":   # the components need q(c|x) beside q(z|x)
        head = lambda summary: ComponentHead(posterior(summary), summary, cfg.components)   # noqa: E731
        return SentenceVAE(cfg, encoder, decoder, head, GaussianMixture(nz, cfg.components), conditioner, classifier)
    prior = SphereUniform(nz) if cfg.prior == "uniform" else StandardNormal(nz)
    return SentenceVAE(cfg, encoder, decoder, posterior, prior, conditioner, classifier)


def latent_families(cfg: ModelConfig) -> tuple[type, type]:
    """The posterior and prior types a model of this config has (without building it)."""
    if cfg.no_latent:
        return Point, PointPrior
    if cfg.latent_type == "categorical":
        return Categorical, UniformCategorical
    if cfg.latent_type == "categorical+gaussian":
        return WithCategory, CategoricalAndNormal
    posterior = {"gaussian": Gaussian, "iaf": IAF, "vmf": VonMisesFisher}[cfg.posterior]
    if cfg.prior == "gmm":
        return WithComponent, GaussianMixture
    return posterior, SphereUniform if cfg.prior == "uniform" else StandardNormal


def facts(cfg: ModelConfig) -> dict:
    """What follows from a config without building the model, for `sentvae info`: a CNN decoder's
    receptive field (tokens), a vMF posterior's KL (nats, fixed by kappa and nz)."""
    out = {}
    if cfg.decoder == "cnn":
        out["receptive_field"] = receptive_field(cfg.dilations, cfg.kernel_size)
    if cfg.posterior == "vmf" and not cfg.no_latent:
        out["kl_fixed"] = vmf_constants(cfg.kappa, cfg.latent)["kl"]
    return out


def code_size(cfg: ModelConfig) -> int:
    """The size of a code z, as posteriors sample it and `encode`/`decode` write and read it: nz, or
    for a categorical latent its one-hot (K), beside the Gaussian's nz where there is one."""
    if cfg.latent_type == "gaussian":
        return cfg.latent
    return cfg.categories + (cfg.latent if cfg.latent_type == "categorical+gaussian" else 0)


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present; an unavailable CUDA device is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise SentvaeError(f"--device: unknown device {name!r} (auto, cpu, cuda, cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SentvaeError(f"--device {name}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SentvaeError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise SentvaeError(f"--device: unsupported device {name!r} (auto, cpu, cuda, cuda:N)")
    return dev


__all__ = ["SentenceVAE", "build_model", "code_size", "facts", "latent_families", "resolve_device"]
