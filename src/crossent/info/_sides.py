"""Moved to :mod:`crossent._sides`; this re-export keeps ``losses/`` working meanwhile.

``losses/_softmax.py`` and ``losses/_distill.py`` import ``prepare`` and
``prepare_pair`` from here; they should import ``crossent._sides`` instead.  Delete
this module once nothing imports it.
"""

from .._sides import prepare, prepare_pair

__all__ = ["prepare", "prepare_pair"]
