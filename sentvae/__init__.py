"""sentvae: train and use sentence variational autoencoders.

The library never prints to stdout and never exits the process; the CLI (sentvae.cli) does that.
Submodules import torch, so import them explicitly (``from sentvae import train``).
"""

__version__ = "0.1.0"
