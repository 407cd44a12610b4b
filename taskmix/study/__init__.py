"""Studies: grids of experiments (`grid`), their results store (`store`) and reports (`report`).

Submodules are imported where used, so `taskmix study status` never loads matplotlib.
"""
