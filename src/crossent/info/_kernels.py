"""Moved to :mod:`crossent._numerics`; this re-export keeps ``losses/`` working meanwhile.

``losses/_distill.py`` imports ``kl_terms_from_log`` from here; it should import
``crossent._numerics`` instead.  Delete this module once nothing imports it.
"""

from .._numerics import kl_terms_from_log

__all__ = ["kl_terms_from_log"]
