"""The live demo: simulstream's WebSocket server with our speech processor and our own page.

``server.py`` starts it (``scripts/serve.sh``), ``guard.py`` and ``protocol.py`` answer a client
whose messages the server cannot use, ``pages.py`` serves ``web/`` (the page: microphone in,
German text out) on the same port.
"""
