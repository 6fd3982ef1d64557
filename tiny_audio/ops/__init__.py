"""Operations tooling: `ta remote` / `ta runpod` (SSH, tmux, rsync), `ta slurm`, `ta debug`,
`ta dev` and `ta doctor`. Like hub/ and demo/, it drives the core from outside: nothing in the
core imports it, and the command line names its commands only to import them when they run."""
