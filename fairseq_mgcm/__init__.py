"""fairseq-mgcm: simultaneous speech translation with modular gradient conflict mitigation.

Load into fairseq with ``--user-dir fairseq_mgcm`` (or ``import fairseq_mgcm``). Importing the
package registers the task, model, criterion and optimizer wrapper (``conflict_aware``), and
allowlists the types fairseq checkpoints hold so that they load under torch's safe
``torch.load`` (torch >= 2.6); fairseq's checkpoint loader then names the file when a
checkpoint cannot be read (``checkpoint_errors.py``), and its copies onto
``checkpoint_last.pt``/``checkpoint_best.pt`` are atomic (``checkpoint_atomic.py``).
"""
from fairseq_mgcm.checkpoint_atomic import install_atomic_checkpoint_copies
from fairseq_mgcm.checkpoint_errors import install_checkpoint_errors
from fairseq_mgcm.checkpoint_safety import install_fairseq_safe_globals

install_fairseq_safe_globals()
install_checkpoint_errors()
install_atomic_checkpoint_copies()

# Registration happens by importing each registry's package explicitly.
from fairseq_mgcm import criterions, models, optim, tasks  # noqa: E402,F401

__version__ = "0.1.0"
