"""Model fitting, evaluation and the champion gate: pure functions of data and specs."""
