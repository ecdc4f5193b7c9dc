"""Workers, qualification tests, gold items, assignments, reviews, agreement, Mechanical Turk."""
