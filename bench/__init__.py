"""The benchmark: configs, data, metrics, training, evaluation, records and leaderboards."""
