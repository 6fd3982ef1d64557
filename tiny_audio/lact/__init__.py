"""LaCT CTC recognizer: a from-scratch character model whose blocks pair sliding-window
attention with large-chunk test-time-training layers. `LaCTForCTC.from_pretrained(dir)` loads a
checkpoint; `ta train +experiments=lact_tiny` trains one."""
