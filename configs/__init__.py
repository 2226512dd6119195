"""Training configs; shipped inside the wheel as ``epam.configs`` (the guard's default target)."""
