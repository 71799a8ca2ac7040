"""The sample pipeline, without ROS: what the node and bag replay both run on camera frames.

Frame check, stamp policy, synchronizer, sampler, bounded queue, decode, engine step and output
fields live here once; ``ros/node.py`` adds subscriptions, publishers, services and diagnostics
around them, ``offline/replay.py`` feeds them a bag's messages.
"""
