"""sentvae: train and use sentence variational autoencoders.

    import sentvae
    sentvae.train(data="corpus.txt", out="runs/a", epochs=4)       # as `sentvae train`
    model = sentvae.load("runs/a/best.pt")                           # -> sentvae.Model
    q = model.encode(["the dog ran ."])                              # q(z|x): q.mean(), q.params()
    model.decode(q), model.sample(5), model.interpolate("a b .", "c d ."), model.score(["a b ."])

The library never prints to stdout and never exits the process; the CLI (sentvae.cli) does that.
Errors the user can fix raise sentvae.SentvaeError. `import sentvae` is light: torch is imported
when the API is first used.
"""

from sentvae.errors import SentvaeError

__version__ = "0.3.0"
__all__ = ["Model", "SentvaeError", "load", "train", "__version__"]


def __getattr__(name: str):
    # the API imports torch: only when asked for, so `sentvae --help` stays instant
    if name in ("load", "train", "Model"):
        from sentvae import api
        return getattr(api, name)
    raise AttributeError(f"module 'sentvae' has no attribute {name!r}")
