"""Depth capture: one DepthFrame and DepthSource for every camera, file and the simulator."""
