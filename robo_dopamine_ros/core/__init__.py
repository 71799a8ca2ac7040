"""The GRM contract as pure functions on plain data: no ROS, no torch.

prompt -> images -> parsing -> progress (modes, fusion, validity) -> shaping, plus the time
helpers (synchronizer, samplers) and the one episode engine every adapter drives.
"""
