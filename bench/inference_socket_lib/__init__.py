"""Parts of bench/inference_socket.py: the scene it measures (database, items, sessions), a websocket
client for the studio socket, and the measured phases."""
