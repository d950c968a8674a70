"""Hub benchmark: simscale's SignalR hub side by side with Node socket.io, aiosignalr, python-socketio
and a bare aiohttp broadcast loop (the floor). Entry point: ``python -m benchmarks.hub`` (see run.py).
"""
