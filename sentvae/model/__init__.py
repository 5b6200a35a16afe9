"""The networks. `build_model(config)` is the one place that looks at the architecture."""

import torch

from sentvae.config import ModelConfig
from sentvae.errors import SentvaeError
from sentvae.model.vae import NoCode, NoEncoder, SentenceVAE
from sentvae.flows import IAF, IAFHead
from sentvae.labelled import LabelClassifier, LabelCode
from sentvae.mixture import ComponentHead, GaussianMixture, WithComponent
from sentvae.posteriors import Gaussian, GaussianHead, Point, PointHead
from sentvae.priors import PointPrior, StandardNormal


def build_model(cfg: ModelConfig) -> SentenceVAE:
    """The one place that looks at the architecture and the latent family."""
    if cfg.arch == "lstm":
        from sentvae.model.lstm import LSTMDecoder as Decoder, LSTMEncoder as Encoder
    elif cfg.arch == "transformer":
        from sentvae.model.transformer import TransformerDecoder as Decoder, TransformerEncoder as Encoder
    else:
        raise SentvaeError(f"--arch: unknown architecture {cfg.arch!r}")
    nz = cfg.latent
    if cfg.no_latent:        # the LM baseline: a point latent at 0, read from nothing
        return SentenceVAE(cfg, NoEncoder(), Decoder(cfg), lambda summary: PointHead(nz), PointPrior(nz), NoCode())
    conditioner = classifier = None
    if cfg.labels is not None:   # the decoder reads [z; the labels' embeddings]; q(c|x) beside q(z|x)
        sizes = [len(values) for _, values in cfg.labels["attributes"]]
        encoder, decoder = Encoder(cfg), Decoder(cfg, cond_dim=nz + len(sizes) * cfg.label_dim)
        conditioner = LabelCode(sizes, cfg.label_dim)
        classifier = lambda summary: LabelClassifier(summary, sizes)   # noqa: E731
    else:
        encoder, decoder = Encoder(cfg), Decoder(cfg)
    posterior = {"gaussian": lambda summary: GaussianHead(summary, nz),
                 "iaf": lambda summary: IAFHead(summary, nz, cfg.flow_steps)}[cfg.posterior]
    if cfg.prior == "gmm":   # the components need q(c|x) beside q(z|x)
        head = lambda summary: ComponentHead(posterior(summary), summary, cfg.components)   # noqa: E731
        return SentenceVAE(cfg, encoder, decoder, head, GaussianMixture(nz, cfg.components), conditioner, classifier)
    return SentenceVAE(cfg, encoder, decoder, posterior, StandardNormal(nz), conditioner, classifier)


def latent_families(cfg: ModelConfig) -> tuple[type, type]:
    """The posterior and prior types a model of this config has (without building it)."""
    if cfg.no_latent:
        return Point, PointPrior
    posterior = {"gaussian": Gaussian, "iaf": IAF}[cfg.posterior]
    if cfg.prior == "gmm":
        return WithComponent, GaussianMixture
    return posterior, StandardNormal


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


__all__ = ["SentenceVAE", "build_model", "latent_families", "resolve_device"]
