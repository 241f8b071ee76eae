"""The model optimisation toolkit: export, quantise, benchmark (`python -m vla_edge.optimize --help`).

Every command reads a policy that follows the model contract (file + sidecar, sha256 checked) and
writes a NEW model with a sidecar that records its parent, the method and what was measured.
"""
