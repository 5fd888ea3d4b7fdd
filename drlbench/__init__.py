"""drlbench: deep-RL agents, one harness, and statistics you can defend."""
__version__ = "0.1.0"
