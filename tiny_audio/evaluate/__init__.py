"""Evaluation: scoring (metrics), peer systems (peers), `ta eval` (runner), `ta analysis`
(analysis, plots) and `ta bench` (bench); the click commands live in cli. Nothing heavy is
imported here, so `ta --help` stays fast."""
