"""Tests of the STK Python binding (python3 -m unittest discover, from bindings/python)."""
