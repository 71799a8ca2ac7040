"""Offline adapters and their outputs: result files, plots and videos (no ROS)."""
