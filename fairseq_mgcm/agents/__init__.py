"""The SimulEval 1.1.4 wait-k agent and its streaming pieces (see docs/agent.md).

``waitk_agent`` is deliberately not imported here: its ``@entrypoint`` registers the agent class
with SimulEval on import, and ``simuleval --agent fairseq_mgcm/agents/waitk_agent.py`` imports
that file under another module name; importing it from here too would register two classes and
make SimulEval ask for ``--agent-class``.

Importing the package also defers scikit-learn and scipy.stats, which fairseq's import loads and
the agent never uses (``fast_start.py``): every agent process (``simuleval --agent-class``, the
sweep, simulstream's server) imports this package before fairseq.
"""
from fairseq_mgcm.console import quiet_console
from fairseq_mgcm.fast_start import defer_unused_imports

quiet_console()  # before SimulEval (pydub's ffmpeg warning) and fairseq (its notices) load
defer_unused_imports()  # before fairseq loads (nothing once it has)
