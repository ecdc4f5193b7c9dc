"""The annotation studio: the canvas page where annotators draw and answer, item by item."""
