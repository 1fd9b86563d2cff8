"""Pure rules and value types: campaigns and phases, participants, ballots, results."""
