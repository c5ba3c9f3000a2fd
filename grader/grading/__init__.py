"""Grading: checks and their registry per lab, the lab plug-in API, grading a notebook, the exercise
contract, the canary, results records. Uses the sandbox; knows no lab by name."""
