"""rosbag2 files without ROS, one job per module.

rosbag2 (``ros2 bag``) is not installable from PyPI, so bags are read and written with the
pure-Python ``rosbags`` library: rosbag2 version 9 directories with ``mcap`` or ``sqlite3``
storage, readable by ``ros2 bag`` on a robot PC. rosbags' CDR is byte-compatible with rclpy's,
so :mod:`robo_dopamine_ros.ros.bag_tools` publishes the raw bytes read here unchanged.

msgtypes: the typestore with our messages; reader: reading bags and their labels; writer: image
bags of episodes; video: videos to a bag; bag_copy: a bag plus added topics (replay's output).
"""
