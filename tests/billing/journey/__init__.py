"""The model-based journey simulator's parts: the world (clock, jobs, faults), the merchants' steps, the books.

`tests/billing/test_journey_simulator.py` drives them; `tests/billing/oracle.py` says what should have been billed.
"""
