"""The networks. `build_model(config)` is the one place that looks at the architecture."""

import torch

from sentvae.config import ModelConfig
from sentvae.errors import SentvaeError
from sentvae.model.vae import SentenceVAE


def build_model(cfg: ModelConfig) -> SentenceVAE:
    if cfg.arch == "lstm":
        from sentvae.model.lstm import LSTMDecoder as Decoder, LSTMEncoder as Encoder
    elif cfg.arch == "transformer":
        from sentvae.model.transformer import TransformerDecoder as Decoder, TransformerEncoder as Encoder
    else:
        raise SentvaeError(f"--arch: unknown architecture {cfg.arch!r}")
    # the LM baseline (--no-latent) has no encoder at all
    return SentenceVAE(cfg, None if cfg.no_latent else Encoder(cfg), Decoder(cfg))


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


__all__ = ["SentenceVAE", "build_model", "resolve_device"]
