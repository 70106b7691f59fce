"""Experiments beside the product: the paper reproduction (`paper/`)."""
