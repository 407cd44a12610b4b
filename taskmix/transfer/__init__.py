"""Which intermediate task helps which target: the measured transfer matrix and cheap predictors of it."""
