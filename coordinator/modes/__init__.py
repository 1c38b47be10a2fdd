"""The round modes, one module each, every one a `run(context, state)` (STYLE.md habit 5).

`network` is the n-party over-threshold schedule, `bilateral` the relayed
two-party openmined-psi exchange. Both start where consent ends and import
only `coordinator.round_context`, never each other nor the lifecycle.
"""
