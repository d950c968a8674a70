"""Small peer servers, one per compared stack, each exposing the same "broadcast to all" operation.

They run as scripts (`python benchmarks/hub/peers/NAME.py --port 0`) in the interpreter that has
their stack: the floor in the project venv (same aiohttp as simscale's hub), python-socketio and
aiosignalr in `benchmarks/hub/.peers/`. Each prints `listening on http(s)://127.0.0.1:PORT`.
"""
