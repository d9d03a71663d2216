"""Putting a model on the leaderboard: its card (`card`), the submission that runs the protocol and writes an entry
(`submit`), and evaluations of published entries by others (`evaluations`)."""
