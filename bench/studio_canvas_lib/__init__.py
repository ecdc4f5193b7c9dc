"""Parts of bench/studio_canvas.py: the scene it measures (database, objects, server) and the
scripts it runs in the page."""
