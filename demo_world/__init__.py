"""The procedural shapes world the offline demo models were trained on, and their quality gates.

Used by scripts/ and tests/ only; the clipdemo package never imports it.
"""
