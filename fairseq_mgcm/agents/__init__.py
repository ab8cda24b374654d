"""The SimulEval 1.1.4 wait-k agent and its streaming pieces (see docs/agent.md).

``waitk_agent`` is deliberately not imported here: its ``@entrypoint`` registers the agent class
with SimulEval on import, and ``simuleval --agent fairseq_mgcm/agents/waitk_agent.py`` imports
that file under another module name; importing it from here too would register two classes and
make SimulEval ask for ``--agent-class``.
"""
from fairseq_mgcm.console import quiet_console

quiet_console()  # before SimulEval (pydub's ffmpeg warning) and fairseq (its notices) load
