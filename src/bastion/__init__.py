"""bastion: machine-learning security toolkit.

Attack a model the way an outside attacker would, map what was proved onto attack trees,
harden the model, and serve it behind a gateway that applies the defenses at run time.
"""

from bastion._version import __version__

__all__ = ["__version__"]
