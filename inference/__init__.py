"""SAM 2 model registry and loading, embedding cache, inference worker, websocket consumers, video propagation."""
